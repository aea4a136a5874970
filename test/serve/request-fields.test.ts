import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CHAT_FIELD_RULES } from '../../src/serve/chat-request.js';
import { COMPLETION_FIELD_RULES } from '../../src/serve/completion-request.js';
import type { FieldRules } from '../../src/serve/request-fields.js';
import { RESPONSES_FIELD_RULES } from '../../src/serve/responses/responses-request.js';
import { BASE_MODEL, fixturePrompt, fixtureTokenizer, rawRequest, startServer, type TestServer } from './harness.js';

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

describe('request fields: every field is read, a documented no-op, or refused with 400 naming it', () => {
  let t: TestServer;
  let prompt: number[];
  const messages = [{ role: 'user' as const, content: 'Explain LoRA in one line.' }];
  before(async () => {
    t = await startServer();
    prompt = await fixturePrompt();
  });
  after(() => t.server.close());

  async function refusal(path: string, body: object): Promise<ErrorBody['error']> {
    const { status, json } = await rawRequest(t.baseURL, 'POST', path, JSON.stringify(body));
    assert.equal(status, 400, JSON.stringify(json));
    return (json as ErrorBody).error;
  }

  it('refuses an unknown field on completions and on chat, naming it', async () => {
    assert.deepEqual(await refusal('/completions', { model: BASE_MODEL, prompt, foo_bar: 1 }), {
      message: '"foo_bar" is not a field of POST /v1/completions requests on this server; remove it.',
      type: 'invalid_request_error',
      param: 'foo_bar',
      code: 'unknown_parameter',
    });
    assert.deepEqual(await refusal('/chat/completions', { model: BASE_MODEL, messages, foo_bar: null }), {
      message: '"foo_bar" is not a field of POST /v1/chat/completions requests on this server; remove it.',
      type: 'invalid_request_error',
      param: 'foo_bar',
      code: 'unknown_parameter',
    });
  });

  it('refuses vLLM fields it does not implement as unknown: use_beam_search, prompt_logprobs, chat_template', async () => {
    for (const field of ['use_beam_search', 'prompt_logprobs', 'truncate_prompt_tokens']) {
      assert.equal((await refusal('/completions', { model: BASE_MODEL, prompt, [field]: true })).param, field);
    }
    assert.equal((await refusal('/chat/completions', { model: BASE_MODEL, messages, chat_template: '{{ x }}' })).param, 'chat_template');
  });

  it('refuses reasoning_effort, store: true, a service tier it lacks, suffix and non-text modalities', async () => {
    const cases: [string, object, string, string][] = [
      ['/chat/completions', { reasoning_effort: 'low' }, 'reasoning_effort', '"reasoning_effort" is not supported by this server (its chat templates take no reasoning effort); remove it.'],
      ['/chat/completions', { store: true }, 'store', '"store" is not supported by this server (it stores no completions); send false or leave it out.'],
      ['/chat/completions', { service_tier: 'flex' }, 'service_tier', '"service_tier" is not supported by this server beyond "auto" and "default" (it has one processing tier).'],
      ['/chat/completions', { modalities: ['text', 'audio'] }, 'modalities', '"modalities" is not supported by this server beyond ["text"] (it reads and writes text only).'],
      ['/completions', { suffix: 'end' }, 'suffix', '"suffix" is not supported by this server (insertion); remove it.'],
    ];
    for (const [path, extra, field, message] of cases) {
      const body = path === '/completions' ? { model: BASE_MODEL, prompt, ...extra } : { model: BASE_MODEL, messages, ...extra };
      assert.deepEqual(await refusal(path, body), { message, type: 'invalid_request_error', param: field, code: 'unsupported_parameter' });
    }
  });

  it('accepts the off values of refused fields and the documented no-ops, with the same output as without them', async () => {
    const plain = { model: BASE_MODEL, messages, max_tokens: 6, temperature: 0 };
    const extras = {
      user: 'u-1', safety_identifier: 's-1', prompt_cache_key: 'k', store: false, metadata: { team: 'a' }, service_tier: 'auto',
      tools: [], tool_choice: 'none', response_format: { type: 'text' }, modalities: ['text'],
    };
    const a = await t.client().chat.completions.create(plain);
    const b = await rawRequest(t.baseURL, 'POST', '/chat/completions', JSON.stringify({ ...plain, ...extras }));
    assert.equal(b.status, 200, JSON.stringify(b.json));
    assert.equal((b.json as { choices: { message: { content: string } }[] }).choices[0]!.message.content, a.choices[0]!.message.content);
  });

  it('refuses every field each endpoint accepts only off, sent on, with 400 naming it; the only no-ops are the documented ones', async () => {
    const endpoints: [string, FieldRules, object][] = [
      ['/chat/completions', CHAT_FIELD_RULES, { model: BASE_MODEL, messages, max_tokens: 2 }],
      ['/completions', COMPLETION_FIELD_RULES, { model: BASE_MODEL, prompt, max_tokens: 2 }],
      ['/responses', RESPONSES_FIELD_RULES, { model: BASE_MODEL, input: 'hi', max_output_tokens: 2 }],
    ];
    // Values tried in turn: the first that a rule does not take as off is sent.
    const candidates: unknown[] = [true, 'on', 7, { a: 1 }, ['text', 'audio'], [{}]];
    let refused = 0;
    for (const [path, rules, base] of endpoints) {
      for (const [field, rule] of Object.entries(rules)) {
        if (rule.kind === 'noOp') assert.ok(['user', 'safety_identifier', 'prompt_cache_key', 'metadata'].includes(field), `${path} ${field} is a no-op`);
        if (rule.kind !== 'offOnly') continue;
        const on = candidates.find((v) => !rule.isOff(v));
        assert.notEqual(on, undefined, `${path} ${field}`);
        assert.deepEqual(await refusal(path, { ...base, [field]: on }), { message: `"${field}" ${rule.refusal}.`, type: 'invalid_request_error', param: field, code: 'unsupported_parameter' }, `${path} ${field}`);
        refused++;
      }
      assert.equal((await refusal(path, { ...base, foo_bar: 1 })).code, 'unknown_parameter');
    }
    assert.ok(refused >= 15, `${refused} refused fields`);
  });

  it('renders a developer message as the system turn of the chat template', async () => {
    const tokenizer = await fixtureTokenizer();
    const system = [{ role: 'system' as const, content: 'You are terse.' }, ...messages];
    const developer = [{ role: 'developer' as const, content: 'You are terse.' }, ...messages];
    const asSystem = await t.client().chat.completions.create({ model: BASE_MODEL, messages: system, max_tokens: 8, temperature: 0 });
    const asDeveloper = await t.client().chat.completions.create({ model: BASE_MODEL, messages: developer, max_tokens: 8, temperature: 0 });
    assert.equal(asDeveloper.usage!.prompt_tokens, tokenizer.applyChatTemplate(system, { addGenerationPrompt: true }).length);
    assert.notEqual(asDeveloper.usage!.prompt_tokens, tokenizer.applyChatTemplate([{ role: 'developer', content: 'You are terse.' }, ...messages], { addGenerationPrompt: true }).length);
    assert.equal(asDeveloper.choices[0]!.message.content, asSystem.choices[0]!.message.content);
  });
});
