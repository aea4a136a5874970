import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type OpenAI from 'openai';
import { GrammarEngine } from '../../src/serve/grammar/grammar-engine.js';
import { maskAllows } from '../../src/serve/grammar/token-mask.js';
import { grammarVocabulary } from '../../src/serve/grammar/vocabulary.js';
import { strictAutoGuide, toolCallGuide } from '../../src/serve/tools/tool-call-guide.js';
import { toolCallSyntaxOf } from '../../src/serve/tools/tool-call-syntax.js';
import { AutoTokenizer, type PreTrainedTokenizer } from '../../src/tokenizer/index.js';
import { fixturePath } from '../helpers/fixtures.js';
import { BASE_MODEL, rawRequest, startServer, type TestServer } from './harness.js';
import { schemaErrors } from './structured-schema.js';
import { modelWithTemplate } from './template-model.js';

/** Strings are bounded so that a random-weight model's calls end within max_tokens. */
const WEATHER_PARAMETERS = {
  type: 'object',
  properties: { city: { type: 'string', maxLength: 10 }, days: { type: 'integer' }, unit: { enum: ['c', 'f'] } },
  required: ['city', 'unit'],
  additionalProperties: false,
} as const;
const TIME_PARAMETERS = { type: 'object', properties: { zone: { type: 'string', maxLength: 6 } }, required: ['zone'] } as const;
const TOOLS = [
  { type: 'function' as const, function: { name: 'get_weather', description: 'The weather in a city.', parameters: WEATHER_PARAMETERS } },
  { type: 'function' as const, function: { name: 'get_time', description: 'The time in a zone.', parameters: TIME_PARAMETERS } },
  { type: 'function' as const, function: { name: 'now', description: 'The current time; no parameters.' } },
];
/** Each function's arguments schema; a function without parameters takes {}. */
const ARGUMENTS: Record<string, object> = {
  get_weather: WEATHER_PARAMETERS,
  get_time: TIME_PARAMETERS,
  now: { type: 'object', properties: {}, additionalProperties: false },
};
const QUESTION = [{ role: 'user' as const, content: 'How warm is it in Paris?' }];
const SEEDS = Array.from({ length: 20 }, (_, i) => i);

/** A template that renders tools and names Llama 3's JSON calls (`<|python_tag|>`), but no tags. */
const LLAMA3_TEMPLATE =
  '{% if tools %}<|im_start|>system\nAnswer a call as {"name": function name, "parameters": arguments}; <|python_tag|> opens a built-in call.\n{{ tools | tojson }}<|im_end|>\n{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}';
/** A template that renders tools and names Mistral's `[TOOL_CALLS]`. */
const MISTRAL_TEMPLATE =
  '{% if tools %}[AVAILABLE_TOOLS]{{ tools | tojson }}[/AVAILABLE_TOOLS]{% endif %}{% for m in messages %}{% if m.role == "user" %}[INST]{{ m.content }}[/INST]{% elif m.tool_calls %}[TOOL_CALLS]{{ m.tool_calls | tojson }}{% else %}{{ m.content }}{% endif %}{% endfor %}';

/** Mistral's v11 templates write each past call as [TOOL_CALLS]name[ARGS]{...}. */
const MISTRAL_V11_TEMPLATE =
  '{% if tools %}[AVAILABLE_TOOLS]{{ tools | tojson }}[/AVAILABLE_TOOLS]{% endif %}{% for m in messages %}{% if m.role == "user" %}[INST]{{ m.content }}[/INST]{% elif m.tool_calls %}{% for c in m.tool_calls %}[TOOL_CALLS]{{ c.function.name }}[ARGS]{{ c.function.arguments | tojson }}{% endfor %}{% else %}{{ m.content }}{% endif %}{% endfor %}';

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

type ToolCall = OpenAI.Chat.Completions.ChatCompletionMessageToolCall & { type: 'function' };

/** The failures of one choice's calls: a name not asked for, or arguments that do not validate against its schema. */
function callErrors(calls: readonly ToolCall[], names: readonly string[]): string[] {
  return calls.flatMap((call) => {
    const { name, arguments: args } = call.function;
    if (!names.includes(name)) return [`called ${name}, not one of ${names.join(', ')}`];
    if (!/^call_[a-zA-Z0-9]{24}$/.test(call.id) && !/^[a-zA-Z0-9]{9}$/.test(call.id)) return [`id ${call.id}`];
    return schemaErrors(ARGUMENTS[name]!, args).map((e) => `${name}(${args}): ${e}`);
  });
}

describe('forced tool calls over a port: tool_choice "required" and a named function held to the calls\' grammar', () => {
  const dirs: string[] = [];
  let hermes: TestServer;
  let phi: TestServer;
  let llama: TestServer;
  let mistral: TestServer;
  let mistralV11: TestServer;
  let plain: TestServer;
  before(async () => {
    const serve = async (template: string) => {
      const dir = await modelWithTemplate(template);
      dirs.push(dir);
      return startServer({ modelDir: dir, modelName: BASE_MODEL });
    };
    hermes = await serve(await readFile(fixturePath('templates', 'Qwen-Qwen3-0.6B.jinja'), 'utf8'));
    phi = await serve(await readFile(fixturePath('templates', 'llama-cpp-microsoft-Phi-4-mini-instruct.jinja'), 'utf8'));
    llama = await serve(LLAMA3_TEMPLATE);
    mistral = await serve(MISTRAL_TEMPLATE);
    mistralV11 = await serve(MISTRAL_V11_TEMPLATE);
    plain = await startServer();
  });
  after(async () => {
    for (const t of [hermes, phi, llama, mistral, mistralV11, plain]) await t.server.close();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  const create = (t: TestServer, seed: number, extra: Partial<OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming> = {}) =>
    t.client().chat.completions.create({ model: BASE_MODEL, messages: QUESTION, tools: TOOLS, tool_choice: 'required', temperature: 1, seed, max_tokens: 400, ...extra });

  async function refusal(t: TestServer, body: object): Promise<ErrorBody['error']> {
    const { status, json } = await rawRequest(t.baseURL, 'POST', '/chat/completions', JSON.stringify({ model: BASE_MODEL, messages: QUESTION, max_tokens: 4, ...body }));
    assert.equal(status, 400, JSON.stringify(json));
    return (json as ErrorBody).error;
  }

  it('"required" (Hermes, Qwen3\'s template): every one of 20 seeded sampled runs returns calls whose arguments validate, finish_reason "tool_calls"', async () => {
    const runs = await Promise.all(SEEDS.map((seed) => create(hermes, seed)));
    const counts = new Set<number>();
    for (const [seed, r] of runs.entries()) {
      const choice = r.choices[0]!;
      const calls = (choice.message.tool_calls ?? []) as ToolCall[];
      assert.equal(choice.finish_reason, 'tool_calls', `seed ${seed}: ${JSON.stringify(choice.message)}`);
      assert.equal(choice.message.content, null, `seed ${seed}`);
      assert.ok(calls.length >= 1, `seed ${seed}`);
      assert.deepEqual(callErrors(calls, ['get_weather', 'get_time', 'now']), [], `seed ${seed}`);
      counts.add(Math.min(calls.length, 2));
    }
    // The grammar allows one call or several, one line apart: the sampled runs show both.
    assert.deepEqual([...counts].sort(), [1, 2]);
  });

  it('"required" with parallel_tool_calls false returns exactly one call', async () => {
    for (const seed of SEEDS.slice(0, 8)) {
      const r = await create(hermes, seed, { parallel_tool_calls: false });
      const calls = (r.choices[0]!.message.tool_calls ?? []) as ToolCall[];
      assert.equal(calls.length, 1, `seed ${seed}`);
      assert.deepEqual(callErrors(calls, ['get_weather', 'get_time', 'now']), [], `seed ${seed}`);
      assert.equal(r.choices[0]!.finish_reason, 'tool_calls');
    }
  });

  it('"required" holds every one of n choices to calls, each choice sampled on its own', async () => {
    const r = await create(hermes, 11, { n: 4, parallel_tool_calls: false });
    assert.equal(r.choices.length, 4);
    for (const choice of r.choices) {
      assert.equal(choice.finish_reason, 'tool_calls');
      assert.deepEqual(callErrors((choice.message.tool_calls ?? []) as ToolCall[], ['get_weather', 'get_time', 'now']), [], JSON.stringify(choice.message));
    }
    assert.ok(new Set(r.choices.map((c) => JSON.stringify((c.message.tool_calls as ToolCall[]).map((t) => t.function)))).size > 1);
  });

  it('a named function: one call of that function, with arguments that validate, whatever the seed', async () => {
    for (const name of ['get_time', 'get_weather', 'now']) {
      for (const seed of SEEDS.slice(0, 5)) {
        const r = await create(hermes, seed, { tool_choice: { type: 'function', function: { name } } });
        const calls = (r.choices[0]!.message.tool_calls ?? []) as ToolCall[];
        assert.equal(calls.length, 1, `${name} seed ${seed}`);
        assert.deepEqual(callErrors(calls, [name]), [], `${name} seed ${seed}`);
        assert.equal(r.choices[0]!.finish_reason, 'tool_calls');
      }
    }
    const none = await create(hermes, 3, { tool_choice: { type: 'function', function: { name: 'now' } } });
    assert.equal((none.choices[0]!.message.tool_calls![0] as ToolCall).function.arguments, '{}');
  });

  it('strict: true on a function is honoured under "required": its arguments validate', async () => {
    const strictTools = TOOLS.map((t) => ({ ...t, function: { ...t.function, strict: true } }));
    for (const seed of SEEDS.slice(0, 5)) {
      const r = await create(hermes, seed, { tools: strictTools });
      assert.deepEqual(callErrors((r.choices[0]!.message.tool_calls ?? []) as ToolCall[], ['get_weather', 'get_time', 'now']), [], `seed ${seed}`);
    }
  });

  it('streams forced calls as OpenAI does (id and name, then arguments), adding up to the calls the same request returns whole', async () => {
    for (const [seed, tool_choice] of [[4, 'required'], [5, { type: 'function', function: { name: 'get_weather' } }]] as const) {
      const whole = await create(hermes, seed, { tool_choice });
      const calls: { id: string; name: string; arguments: string }[] = [];
      let content = '';
      let finish: string | null = null;
      const stream = await hermes.client().chat.completions.create({ model: BASE_MODEL, messages: QUESTION, tools: TOOLS, tool_choice, temperature: 1, seed, max_tokens: 400, stream: true });
      for await (const chunk of stream) {
        const choice = chunk.choices[0];
        if (!choice) continue;
        content += choice.delta.content ?? '';
        for (const d of choice.delta.tool_calls ?? []) {
          if (d.id !== undefined) {
            assert.equal(d.index, calls.length);
            calls.push({ id: d.id, name: d.function!.name!, arguments: d.function!.arguments ?? '' });
          } else calls[d.index]!.arguments += d.function?.arguments ?? '';
        }
        finish = choice.finish_reason ?? finish;
      }
      assert.equal(content, '');
      assert.equal(finish, 'tool_calls');
      const expected = (whole.choices[0]!.message.tool_calls as ToolCall[]).map((c) => ({ name: c.function.name, arguments: c.function.arguments }));
      assert.deepEqual(calls.map(({ name, arguments: args }) => ({ name, arguments: args })), expected, `seed ${seed}`);
      assert.ok(expected.length >= 1);
    }
  });

  for (const [syntax, server] of [['phi4_mini (llama.cpp\'s Phi-4-mini template)', () => phi], ['llama3_json', () => llama], ['mistral', () => mistral], ['mistral, v11 template ([ARGS])', () => mistralV11]] as const) {
    it(`"required" and a named function in ${syntax}: calls that parse and validate`, async () => {
      for (const seed of SEEDS.slice(0, 6)) {
        const required = await create(server(), seed);
        assert.equal(required.choices[0]!.finish_reason, 'tool_calls', `seed ${seed}: ${JSON.stringify(required.choices[0]!.message)}`);
        assert.deepEqual(callErrors((required.choices[0]!.message.tool_calls ?? []) as ToolCall[], ['get_weather', 'get_time', 'now']), [], `seed ${seed}`);
        const named = await create(server(), seed, { tool_choice: { type: 'function', function: { name: 'get_weather' } } });
        const calls = (named.choices[0]!.message.tool_calls ?? []) as ToolCall[];
        assert.equal(calls.length, 1, `seed ${seed}`);
        assert.deepEqual(callErrors(calls, ['get_weather']), [], `seed ${seed}`);
      }
    });
  }

  it('refuses a named function that is not among the tools, and a forced choice without tools', async () => {
    assert.deepEqual(await refusal(hermes, { tools: TOOLS, tool_choice: { type: 'function', function: { name: 'get_news' } } }), {
      message: '"tool_choice" names the function "get_news", which is not among "tools" ("get_weather", "get_time", "now"); name one of them.',
      type: 'invalid_request_error',
      param: 'tool_choice',
      code: null,
    });
    assert.equal((await refusal(hermes, { tool_choice: 'required' })).message, '"tool_choice" "required" needs the functions it may call in "tools"; send them, or leave "tool_choice" out.');
    assert.equal((await refusal(hermes, { tools: [], tool_choice: { type: 'function', function: { name: 'now' } } })).message, '"tool_choice" naming "now" needs the functions it may call in "tools"; send them, or leave "tool_choice" out.');
    assert.equal((await refusal(hermes, { tools: TOOLS, tool_choice: { type: 'function', function: { name: 'now', strict: true } } })).param, 'tool_choice.function.strict');
    assert.equal((await refusal(hermes, { tools: TOOLS, tool_choice: 'any' })).message, '"tool_choice" must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}.');
  });

  it('strict: true under "auto" holds the calls the model opens to the grammar (special tokens, outside it, can no longer be written)', async () => {
    const strictTools = [{ ...TOOLS[0]!, function: { ...TOOLS[0]!.function, strict: true } }, TOOLS[1]!];
    // logit_bias makes every token <|im_start|> (id 1), a special token, which plain "auto" writes and no grammar allows.
    const body = { model: BASE_MODEL, messages: QUESTION, max_tokens: 3, temperature: 0, logit_bias: { '1': 100 } };
    const content = async (tools: object[]) => (((await rawRequest(hermes.baseURL, 'POST', '/chat/completions', JSON.stringify({ ...body, tools }))).json as { choices: { message: { content: string } }[] }).choices[0]!.message.content);
    assert.equal(await content(TOOLS), '<|im_start|><|im_start|><|im_start|>');
    const held = await content(strictTools);
    assert.equal(held.includes('<|im_start|>'), false, held);
    for (const seed of SEEDS.slice(0, 5)) {
      const body = { model: BASE_MODEL, messages: QUESTION, tools: strictTools, temperature: 1, seed, max_tokens: 40 };
      const whole = await hermes.client().chat.completions.create(body);
      let streamed = '';
      for await (const chunk of await hermes.client().chat.completions.create({ ...body, stream: true })) streamed += chunk.choices[0]?.delta.content ?? '';
      assert.equal(streamed, whole.choices[0]!.message.content ?? '', `seed ${seed}`);
      assert.deepEqual(callErrors((whole.choices[0]!.message.tool_calls ?? []) as ToolCall[], ['get_weather', 'get_time']), [], `seed ${seed}`);
    }
  });

  it('refuses strict: true under "none", and under "auto" where the syntax\'s calls open with no tag of their own', async () => {
    const strictTools = [{ ...TOOLS[0]!, function: { ...TOOLS[0]!.function, strict: true } }];
    assert.deepEqual(await refusal(hermes, { tools: strictTools, tool_choice: 'none' }), {
      message: 'tools[0].function.strict true keeps a call\'s arguments to the schema, and "tool_choice" "none" reads no calls; send "auto", "required" or a named function, or leave strict out.',
      type: 'invalid_request_error',
      param: 'tools[0].function.strict',
      code: 'unsupported_parameter',
    });
    for (const [server, name] of [[llama, 'llama3_json'], [mistral, 'mistral']] as const) {
      assert.deepEqual(await refusal(server, { tools: [TOOLS[1], ...strictTools] }), {
        message: `tools[1].function.strict true under "tool_choice": "auto" needs calls that each open with a tag, and ${name} calls do not; send "tool_choice": "required" or a named function, or leave strict out.`,
        type: 'invalid_request_error',
        param: 'tools[1].function.strict',
        code: 'unsupported_parameter',
      });
    }
    assert.equal((await refusal(hermes, { tools: strictTools, response_format: { type: 'json_object' } })).message, '"strict" tools (whose calls are held to their schemas) and "response_format" both constrain the output; send one of them.');
  });

  it('refuses a forced call beside another output constraint, parameters that are not an object schema, and keywords the grammar cannot keep', async () => {
    assert.deepEqual(await refusal(hermes, { tools: TOOLS, tool_choice: 'required', response_format: { type: 'json_object' } }), {
      message: '"tool_choice" (which forces tool calls) and "response_format" both constrain the output; send one of them.',
      type: 'invalid_request_error',
      param: 'response_format',
      code: null,
    });
    const withParameters = (parameters: object) => [{ type: 'function', function: { name: 'f', parameters } }];
    assert.equal(
      (await refusal(hermes, { tools: withParameters({ type: 'array' }), tool_choice: 'required' })).message,
      '"tools[0].function.parameters" has "type": "array"; a function\'s parameters are an object, so its schema\'s "type" must be "object".',
    );
    const keyword = await refusal(hermes, { tools: [TOOLS[0], ...withParameters({ type: 'object', properties: { n: { type: 'number', multipleOf: 2 } } })], tool_choice: 'required' });
    assert.deepEqual([keyword.param, keyword.message], [
      'tools[1].function.parameters',
      '"tools[1].function.parameters" uses the JSON Schema keyword "multipleOf" at #/properties/n/multipleOf, which this server cannot guarantee: the grammar engine does not enforce it; remove it or list the values with "enum".',
    ]);
    // Under "auto" the schema only reaches the prompt, so the same tools are served.
    const auto = await hermes.client().chat.completions.create({ model: BASE_MODEL, messages: QUESTION, tools: withParameters({ type: 'object', properties: { n: { type: 'number', multipleOf: 2 } } }) as OpenAI.Chat.Completions.ChatCompletionTool[], max_tokens: 2 });
    assert.equal(auto.choices.length, 1);
  });

  it('refuses "required" where the template renders tools in no syntax the server parses', async () => {
    const dir = await modelWithTemplate('{% if tools %}{{ tools | tojson }}{% endif %}{% for m in messages %}{{ m.content }}{% endfor %}');
    const t = await startServer({ modelDir: dir, modelName: BASE_MODEL });
    try {
      const error = await refusal(t, { tools: TOOLS, tool_choice: 'required' });
      assert.equal(error.param, 'tools');
      assert.ok(error.message.startsWith(`The chat template in ${join(dir, 'chat_template.jinja')} writes tool calls in none of the syntaxes this server parses`), error.message);
    } finally {
      await t.server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('forced tool calls: the grammar is the text the chat template writes for the same calls', () => {
  const CALLS = [
    { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris', days: 3, unit: 'c' } } },
    { id: 'call_2', type: 'function', function: { name: 'get_time', arguments: { zone: 'CET' } } },
  ];

  /** What the template renders for an assistant turn holding `calls`: the text between the turn's header and its end. */
  function writtenCalls(tokenizer: PreTrainedTokenizer, template: string, calls: readonly object[], header: string, end: string): string {
    const messages = [...QUESTION, { role: 'assistant', content: '', tool_calls: calls }];
    const text = tokenizer.applyChatTemplate(messages, { chatTemplate: template, tools: TOOLS, tokenize: false });
    const start = text.lastIndexOf(header) + header.length;
    return text.slice(start, text.indexOf(end, start));
  }

  /** Whether the grammar of `choice` ("auto": strict tools under auto) in the template's syntax accepts `text` whole, token by token. */
  async function accepts(tokenizer: PreTrainedTokenizer, template: string, choice: 'auto' | 'required' | { name: string }, text: string, maxCalls = Infinity): Promise<boolean> {
    const syntax = toolCallSyntaxOf(template)!;
    const engine = new GrammarEngine(() => grammarVocabulary(tokenizer, 384), [2]);
    const guide = await engine.compile(choice === 'auto' ? strictAutoGuide(syntax, TOOLS, maxCalls) : toolCallGuide(syntax, TOOLS, choice, maxCalls));
    const row = await guide.start(new Set([2]));
    try {
      for (const token of tokenizer.encode(text, { addSpecialTokens: false })) {
        if (!maskAllows(await row.nextMask(), token)) return false;
        row.accept(token);
      }
      await row.nextMask();
      return row.complete;
    } finally {
      row.dispose();
      guide.release();
    }
  }

  it('strict tools under "auto" (Hermes): free text, and every call the text opens held to the grammar', async () => {
    const tokenizer = await AutoTokenizer.fromPretrained(fixturePath('tiny-llama'));
    const template = await readFile(fixturePath('templates', 'Qwen-Qwen3-0.6B.jinja'), 'utf8');
    const call = '<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET"}}\n</tool_call>';
    assert.equal(await accepts(tokenizer, template, 'auto', 'Any text at all, <b>tags</b> too.'), true);
    assert.equal(await accepts(tokenizer, template, 'auto', `Let me look.\n${call}`), true);
    assert.equal(await accepts(tokenizer, template, 'auto', `${call}\n${call}`), true);
    assert.equal(await accepts(tokenizer, template, 'auto', `${call}\n${call}`, 1), false);
    assert.equal(await accepts(tokenizer, template, 'auto', call.replace('"CET"', '"CENTRAL"')), false);
    assert.equal(await accepts(tokenizer, template, 'auto', call.replace('get_time', 'get_news')), false);
    assert.equal(await accepts(tokenizer, template, 'auto', 'Half a call: <tool_call>\n{"name": "get_time"'), false);
  });

  it('Hermes (Qwen3\'s template): accepts the calls as the template writes them, one or two, and nothing else', async () => {
    const tokenizer = await AutoTokenizer.fromPretrained(fixturePath('tiny-llama'));
    const template = await readFile(fixturePath('templates', 'Qwen-Qwen3-0.6B.jinja'), 'utf8');
    // The template writes an empty think block before the last turn's calls; the grammar holds the calls.
    const one = writtenCalls(tokenizer, template, CALLS.slice(0, 1), '<|im_start|>assistant\n<think>\n\n</think>\n\n', '<|im_end|>');
    const two = writtenCalls(tokenizer, template, CALLS, '<|im_start|>assistant\n<think>\n\n</think>\n\n', '<|im_end|>');
    assert.equal(one, '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3, "unit": "c"}}\n</tool_call>');
    assert.equal(await accepts(tokenizer, template, 'required', one), true);
    assert.equal(await accepts(tokenizer, template, 'required', two), true);
    assert.equal(await accepts(tokenizer, template, 'required', two, 1), false);
    assert.equal(await accepts(tokenizer, template, { name: 'get_weather' }, one), true);
    assert.equal(await accepts(tokenizer, template, { name: 'get_time' }, one), false);
    assert.equal(await accepts(tokenizer, template, 'required', one.replace('"c"', '"k"')), false);
    assert.equal(await accepts(tokenizer, template, 'required', one.replace('"days": 3', '"days": 3.5')), false);
    assert.equal(await accepts(tokenizer, template, 'required', one.replace('{"name"', '{ "name"')), false);
  });

  it('Phi-4-mini (llama.cpp\'s template): accepts its calls as written, each between its own tags', async () => {
    const tokenizer = await AutoTokenizer.fromPretrained(fixturePath('tiny-llama'));
    const template = await readFile(fixturePath('templates', 'llama-cpp-microsoft-Phi-4-mini-instruct.jinja'), 'utf8');
    const two = writtenCalls(tokenizer, template, CALLS, '<|assistant|>', '<|end|>');
    assert.equal(two, '<|tool_call|>{"name": "get_weather", "arguments": {"city": "Paris", "days": 3, "unit": "c"}}<|/tool_call|><|tool_call|>{"name": "get_time", "arguments": {"zone": "CET"}}<|/tool_call|>');
    assert.equal(await accepts(tokenizer, template, 'required', two), true);
    assert.equal(await accepts(tokenizer, template, { name: 'get_time' }, two), false);
  });

  it('Mistral v11 ([ARGS] in its template): accepts [TOOL_CALLS]name[ARGS]{...} per call as written, forced and under strict "auto"', async () => {
    const tokenizer = await AutoTokenizer.fromPretrained(fixturePath('tiny-llama'));
    const messages = [...QUESTION, { role: 'assistant', content: '', tool_calls: CALLS }];
    const rendered = tokenizer.applyChatTemplate(messages, { chatTemplate: MISTRAL_V11_TEMPLATE, tools: TOOLS, tokenize: false });
    const written = rendered.slice(rendered.indexOf('[TOOL_CALLS]'));
    assert.equal(written, '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris", "days": 3, "unit": "c"}[TOOL_CALLS]get_time[ARGS]{"zone": "CET"}');
    const one = written.slice(0, written.indexOf('[TOOL_CALLS]', 1));
    assert.equal(await accepts(tokenizer, MISTRAL_V11_TEMPLATE, 'required', written), true);
    assert.equal(await accepts(tokenizer, MISTRAL_V11_TEMPLATE, 'required', written, 1), false);
    assert.equal(await accepts(tokenizer, MISTRAL_V11_TEMPLATE, 'required', one, 1), true);
    assert.equal(await accepts(tokenizer, MISTRAL_V11_TEMPLATE, { name: 'get_time' }, one), false);
    assert.equal(await accepts(tokenizer, MISTRAL_V11_TEMPLATE, 'required', one.replace('"c"', '"k"')), false);
    assert.equal(await accepts(tokenizer, MISTRAL_V11_TEMPLATE, 'auto', `Let me check. ${written}`), true);
    assert.equal(await accepts(tokenizer, MISTRAL_V11_TEMPLATE, 'auto', `Let me check. ${one.replace('get_weather', 'get_news')}`), false);
  });

  it('Mistral: accepts the [TOOL_CALLS] list as a template writes it', async () => {
    const tokenizer = await AutoTokenizer.fromPretrained(fixturePath('tiny-llama'));
    const messages = [...QUESTION, { role: 'assistant', content: '', tool_calls: CALLS.map((c) => ({ name: c.function.name, arguments: c.function.arguments })) }];
    const rendered = tokenizer.applyChatTemplate(messages, { chatTemplate: MISTRAL_TEMPLATE, tools: TOOLS, tokenize: false });
    const written = rendered.slice(rendered.indexOf('[TOOL_CALLS]'));
    assert.equal(await accepts(tokenizer, MISTRAL_TEMPLATE, 'required', written), true);
  });
});
