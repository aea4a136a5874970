import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BASE_MODEL, postOk, rawRequest, startServer, type TestServer } from './harness.js';
import { ACCEPTANCE_SCHEMA, schemaErrors } from './structured-schema.js';

interface Completion {
  choices: { text: string; finish_reason: string }[];
  usage: { completion_tokens: number };
}

const messages = [{ role: 'user' as const, content: 'A pet?' }];
const SEEDS = Array.from({ length: 50 }, (_, i) => i);
/** The fixture tokenizer's ids of '"' and '}'. */
const QUOTE = 4;
const CLOSE_BRACE = 95;

describe('structured outputs: response_format and vLLM guided decoding keep every sampled token to the grammar', () => {
  let t: TestServer;
  const complete = (body: object) => postOk<Completion>(t.baseURL, '/completions', { model: BASE_MODEL, prompt: 'Answer:', max_tokens: 64, temperature: 1, ...body });
  const refusal = async (path: string, body: object) => {
    const base = path === '/completions' ? { model: BASE_MODEL, prompt: 'x' } : { model: BASE_MODEL, messages };
    const { status, json } = await rawRequest(t.baseURL, 'POST', path, JSON.stringify({ ...base, ...body }));
    assert.equal(status, 400, JSON.stringify(json));
    return (json as { error: { message: string; param: string } }).error;
  };
  before(async () => {
    t = await startServer();
  });
  after(() => t.server.close());

  it('a json_schema response validates against its schema on every one of 50 seeded runs at temperature 1, each ending with stop', async () => {
    const runs = await Promise.all(
      SEEDS.map((seed) =>
        t.client().chat.completions.create({
          model: BASE_MODEL,
          messages,
          temperature: 1,
          seed,
          max_tokens: 220,
          response_format: { type: 'json_schema', json_schema: { name: 'pet', schema: ACCEPTANCE_SCHEMA, strict: true } },
        }),
      ),
    );
    for (const [seed, r] of runs.entries()) {
      const content = r.choices[0]!.message.content ?? '';
      assert.equal(r.choices[0]!.finish_reason, 'stop', `seed ${seed}: ${content}`);
      assert.deepEqual(schemaErrors(ACCEPTANCE_SCHEMA, content), [], `seed ${seed}: ${content}`);
    }
  });

  it('streams a json_schema response whose deltas add up to the text the same request returns whole', async () => {
    const body = { model: BASE_MODEL, messages, temperature: 1, seed: 7, max_tokens: 220, response_format: { type: 'json_schema' as const, json_schema: { name: 'pet', schema: ACCEPTANCE_SCHEMA } } };
    const whole = await t.client().chat.completions.create(body);
    let streamed = '';
    for await (const chunk of await t.client().chat.completions.create({ ...body, stream: true })) streamed += chunk.choices[0]?.delta.content ?? '';
    assert.equal(streamed, whole.choices[0]!.message.content);
    assert.deepEqual(schemaErrors(ACCEPTANCE_SCHEMA, streamed), []);
  });

  it('guided_json takes the schema as an object or as its JSON text, on completions, with the same output', async () => {
    const asObject = await complete({ seed: 3, max_tokens: 220, guided_json: ACCEPTANCE_SCHEMA });
    const asText = await complete({ seed: 3, max_tokens: 220, guided_json: JSON.stringify(ACCEPTANCE_SCHEMA) });
    assert.equal(asText.choices[0]!.text, asObject.choices[0]!.text);
    assert.deepEqual(schemaErrors(ACCEPTANCE_SCHEMA, asObject.choices[0]!.text), []);
  });

  it('json_object output parses as a JSON object on every seed (logit_bias toward \'"\' and \'}\' keeps runs short)', async () => {
    const runs = await Promise.all(
      SEEDS.slice(0, 20).map((seed) =>
        t.client().chat.completions.create({ model: BASE_MODEL, messages, temperature: 1, seed, max_tokens: 220, response_format: { type: 'json_object' }, logit_bias: { [QUOTE]: 3, [CLOSE_BRACE]: 3 } }),
      ),
    );
    for (const r of runs) {
      const content = r.choices[0]!.message.content ?? '';
      assert.equal(r.choices[0]!.finish_reason, 'stop', content);
      const value: unknown = JSON.parse(content);
      assert.ok(typeof value === 'object' && value !== null && !Array.isArray(value), content);
    }
  });

  it('guided_regex output fully matches the regex, on completions and chat', async () => {
    const pattern = '[a-c]{2,5}-[0-9]{2}(x|yz)?';
    for (const seed of SEEDS.slice(0, 10)) {
      const c = await complete({ seed, guided_regex: pattern });
      assert.match(c.choices[0]!.text, new RegExp(`^(?:${pattern})$`));
      assert.equal(c.choices[0]!.finish_reason, 'stop');
    }
    const chat = await postOk<{ choices: { message: { content: string } }[] }>(t.baseURL, '/chat/completions', { model: BASE_MODEL, messages, seed: 1, guided_regex: pattern });
    assert.match(chat.choices[0]!.message.content, new RegExp(`^(?:${pattern})$`));
  });

  it('guided_choice output is one of the choices', async () => {
    const choices = ['yes', 'no', 'not sure'];
    const seen = new Set<string>();
    for (const seed of SEEDS.slice(0, 10)) {
      const c = await complete({ seed, guided_choice: choices });
      assert.ok(choices.includes(c.choices[0]!.text), c.choices[0]!.text);
      seen.add(c.choices[0]!.text);
    }
    assert.ok(seen.size > 1, 'sampling picks among the choices');
  });

  it('guided_grammar takes xgrammar EBNF and keeps the output in its language', async () => {
    for (const seed of SEEDS.slice(0, 5)) {
      const c = await complete({ seed, max_tokens: 220, guided_grammar: 'root ::= "(" item ("," item)* ")"\nitem ::= [0-9] | "x"' });
      assert.match(c.choices[0]!.text, /^\((?:[0-9]|x)(?:,(?:[0-9]|x))*\)$/);
    }
  });

  it('ends a choice with stop when its grammar is complete and ignore_eos leaves no stop token', async () => {
    const c = await complete({ seed: 0, guided_choice: ['done'], ignore_eos: true });
    assert.deepEqual([c.choices[0]!.text, c.choices[0]!.finish_reason], ['done', 'stop']);
  });

  it('ends a choice with length, never leaving the grammar, when logit_bias bans every token it allows', async () => {
    const x = 90;
    const c = await complete({ seed: 0, guided_regex: 'x+', logit_bias: { [x]: -100 } });
    assert.deepEqual([c.choices[0]!.text, c.choices[0]!.finish_reason, c.usage.completion_tokens], ['', 'length', 0]);
  });

  it('keeps integers to minimum / maximum / exclusiveMinimum / exclusiveMaximum on every one of 50 seeded runs', async () => {
    const schema = {
      type: 'object',
      properties: {
        small: { type: 'integer', minimum: 5, maximum: 120 },
        negative: { type: 'integer', exclusiveMinimum: -1000, exclusiveMaximum: -7 },
        around: { type: 'integer', minimum: -3.5, maximum: 3.5 },
        low: { type: 'integer', minimum: 99 },
        high: { type: 'integer', maximum: -250 },
      },
      required: ['small', 'negative', 'around', 'low', 'high'],
      additionalProperties: false,
    };
    const runs = await Promise.all(SEEDS.map((seed) => complete({ seed, max_tokens: 200, guided_json: schema })));
    const seen = new Set<number>();
    for (const [seed, c] of runs.entries()) {
      assert.equal(c.choices[0]!.finish_reason, 'stop', `seed ${seed}: ${c.choices[0]!.text}`);
      assert.deepEqual(schemaErrors(schema, c.choices[0]!.text), [], `seed ${seed}: ${c.choices[0]!.text}`);
      seen.add((JSON.parse(c.choices[0]!.text) as { around: number }).around);
    }
    assert.ok(seen.size > 2, 'sampling picks among the values in range');
  });

  it('refuses JSON Schema keywords the engine would not enforce, naming the keyword, where it is and the field', async () => {
    const cases: [object, string][] = [
      [{ type: 'object', properties: { score: { type: 'number', minimum: 0 } } }, '"guided_json" uses "minimum" at #/properties/score on a schema whose "type" is not "integer"; this server keeps bounds on integers only: use "type": "integer", or list the values with "enum".'],
      [{ type: 'integer', minimum: 0, enum: [1, 2] }, '"guided_json" has "enum" beside "minimum" at #; an integer with bounds takes no other keyword here: drop one of them.'],
      [{ type: 'integer', exclusiveMinimum: 3, maximum: 3.5 }, '"guided_json" has bounds at # that no integer (of up to 16 digits) meets; fix them.'],
      [{ type: 'integer', maximum: '9' }, '"guided_json" has "maximum": "9" at #; it must be a number.'],
      [{ const: 'loraforge-integer-range:0:9' }, '"guided_json" holds the text this server marks integer ranges with; remove it from the schema.'],
      [{ oneOf: [{ type: 'string' }, { type: 'integer' }] }, '"guided_json" uses the JSON Schema keyword "oneOf" at #/oneOf, which this server cannot guarantee: the grammar engine treats it as "anyOf", which lets a value match several branches; use "anyOf".'],
      [{ type: 'string', format: 'credit-card' }, '"guided_json" has "format": "credit-card" at #/format; this server enforces only "date", "time", "date-time", "duration", "email", "hostname", "ipv4", "ipv6", "uri", "uuid".'],
      [{ type: 'string', pattern: '^.+$' }, '"guided_json" has a "pattern" at #/pattern whose "." can match a quote, a backslash, a control character or a character beyond ASCII, which the grammar engine cannot keep to JSON and the pattern; narrow it to printable ASCII.'],
      [{ type: 'object', propertyNames: { maxLength: 3 } }, '"guided_json" uses the JSON Schema keyword "propertyNames" at #/propertyNames, which this server cannot guarantee: the grammar engine does not enforce it; name the properties in "properties".'],
      [{ type: 'integer', foo: 1 }, '"guided_json" uses "foo" at #/foo, which is not a JSON Schema keyword this server enforces; remove it.'],
    ];
    for (const [schema, message] of cases) assert.deepEqual(await refusal('/completions', { guided_json: schema }), { message, type: 'invalid_request_error', param: 'guided_json', code: null });
    const rf = await refusal('/chat/completions', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', nullable: true } } } });
    assert.equal(rf.message, '"response_format" uses the JSON Schema keyword "nullable" at #/nullable, which this server cannot guarantee: it is OpenAPI\'s, not JSON Schema\'s; use "type": ["string", "null"] (or the type you mean with "null").');
  });

  it('refuses a grammar or regex the engine cannot parse with the engine\'s reason, and serves the next request', async () => {
    assert.deepEqual(await refusal('/completions', { guided_regex: '(ab' }), {
      message: '"guided_regex" was refused by the grammar engine: Regex parsing error at position 4: The parenthesis is not closed; fix it.',
      type: 'invalid_request_error',
      param: 'guided_regex',
      code: null,
    });
    assert.equal((await refusal('/completions', { guided_grammar: 'root ::= "a" | b' })).message, '"guided_grammar" was refused by the grammar engine: EBNF parser error at line 1, column 16: Rule "b" is not defined; fix it.');
    assert.equal((await complete({ seed: 0, guided_choice: ['ok'] })).choices[0]!.text, 'ok');
  });

  it('survives more refused grammars than one engine instance could (each abort leaks its stack)', async () => {
    for (let i = 0; i < 40; i++) assert.equal((await refusal('/completions', { guided_regex: `(a${i}` })).param, 'guided_regex');
    assert.equal((await complete({ seed: 0, guided_choice: ['still fine'] })).choices[0]!.text, 'still fine');
  });

  it('refuses two constraints at once, other backends, whitespace patterns and malformed response_format, naming the field', async () => {
    const cases: [string, object, string, string][] = [
      ['/completions', { guided_regex: 'a', guided_choice: ['a'] }, 'guided_choice', '"guided_regex" and "guided_choice" both constrain the output; send one of them.'],
      ['/chat/completions', { response_format: { type: 'json_object' }, guided_json: {} }, 'guided_json', '"response_format" and "guided_json" both constrain the output; send one of them.'],
      ['/completions', { guided_choice: ['a'], guided_decoding_backend: 'outlines' }, 'guided_decoding_backend', '"guided_decoding_backend" is "outlines"; this server\'s one grammar engine is "xgrammar": send that or leave the field out.'],
      ['/completions', { guided_json: {}, guided_whitespace_pattern: '[ ]*' }, 'guided_whitespace_pattern', '"guided_whitespace_pattern" is not supported by this server (its JSON grammars allow no whitespace outside strings but the separators ", " and ": "); remove it.'],
      ['/chat/completions', { response_format: { type: 'xml' } }, 'response_format', '"response_format.type" must be "text", "json_object" or "json_schema", got "xml".'],
      ['/chat/completions', { response_format: { type: 'json_schema', json_schema: { schema: {} } } }, 'response_format', '"response_format.json_schema.name" is required and must be a non-empty string.'],
      ['/chat/completions', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: {}, extra: 1 } } }, 'response_format', '"response_format.json_schema.extra" is not a field of json_schema; remove it.'],
      ['/completions', { guided_json: '{not json' }, 'guided_json', '"guided_json" is a string that is not JSON; send the schema as an object or as its JSON text.'],
      ['/completions', { guided_choice: [] }, 'guided_choice', '"guided_choice" must be a non-empty array of non-empty strings.'],
    ];
    for (const [path, body, param, message] of cases) {
      const error = await refusal(path, body);
      assert.deepEqual([error.param, error.message], [param, message]);
    }
  });

  it('accepts guided_decoding_backend "xgrammar" and response_format text as no constraint', async () => {
    const c = await complete({ seed: 2, guided_choice: ['a', 'b'], guided_decoding_backend: 'xgrammar' });
    assert.ok(['a', 'b'].includes(c.choices[0]!.text));
    const plain = await complete({ seed: 2, max_tokens: 6 });
    const text = await postOk<{ choices: { text: string }[] }>(t.baseURL, '/completions', { model: BASE_MODEL, prompt: 'Answer:', max_tokens: 6, temperature: 1, seed: 2, response_format: { type: 'text' } });
    assert.equal(text.choices[0]!.text, plain.choices[0]!.text);
  });
});
