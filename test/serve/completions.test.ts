import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generate } from '../../src/generate/index.js';
import { BASE_MODEL, decodeOutput, fixtureGeneration, fixturePrompt, fixtureTokenizer, loadFixtureModel, rawRequest, startServer, type TestServer } from './harness.js';

describe('completions and chat on the base model', () => {
  let t: TestServer;
  let prompt: number[];
  let expected: string;
  before(async () => {
    t = await startServer();
    prompt = await fixturePrompt();
    expected = await decodeOutput(await fixtureGeneration('base'));
  });
  after(() => t.server.close());

  it('returns transformers\' greedy tokens for a token-id prompt, with usage and finish_reason length', async () => {
    const r = await t.client().completions.create({ model: BASE_MODEL, prompt, max_tokens: 16, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.model, BASE_MODEL);
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0]!.text, expected);
    assert.equal(r.choices[0]!.finish_reason, 'length');
    assert.deepEqual(r.usage, { prompt_tokens: 8, completion_tokens: 16, total_tokens: 24 });
  });

  it('streams chunks that add up to the same text, then a finish chunk and a usage chunk', async () => {
    const stream = await t.client().completions.create({ model: BASE_MODEL, prompt, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    const finishes: (string | null)[] = [];
    let usage: unknown = null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'text_completion');
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.text;
        finishes.push(c.finish_reason);
      }
    }
    assert.equal(text, expected);
    assert.equal(finishes.at(-1), 'length');
    assert.ok(finishes.slice(0, -1).every((f) => f === null));
    assert.deepEqual(usage, { prompt_tokens: 8, completion_tokens: 16, total_tokens: 24 });
  });

  it('ends a stream with "data: [DONE]" in server-sent-event framing', async () => {
    const res = await fetch(`${t.baseURL}/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: BASE_MODEL, prompt, max_tokens: 4, temperature: 0, stream: true }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const body = await res.text();
    const events = body.split('\n\n').filter((e) => e.length > 0);
    assert.ok(events.every((e) => e.startsWith('data: ')));
    assert.equal(events.at(-1), 'data: [DONE]');
    assert.ok(body.endsWith('data: [DONE]\n\n'));
  });

  it('encodes a text prompt with the tokenizer: same output as its token ids', async () => {
    const tokenizer = await fixtureTokenizer();
    const text = 'Low-rank adaptation trains A and B';
    const ids = tokenizer.encode(text);
    const fromText = await t.client().completions.create({ model: BASE_MODEL, prompt: text, max_tokens: 8, temperature: 0 });
    const fromIds = await t.client().completions.create({ model: BASE_MODEL, prompt: ids, max_tokens: 8, temperature: 0 });
    assert.equal(fromText.usage?.prompt_tokens, ids.length);
    assert.equal(fromText.choices[0]!.text, fromIds.choices[0]!.text);
  });

  it('cuts the output before a stop string and reports finish_reason stop, streamed or not', async () => {
    const stop = expected.slice(5, 8);
    const cut = expected.slice(0, expected.indexOf(stop));
    const r = await t.client().completions.create({ model: BASE_MODEL, prompt, max_tokens: 16, temperature: 0, stop: [stop] });
    assert.equal(r.choices[0]!.text, cut);
    assert.equal(r.choices[0]!.finish_reason, 'stop');
    assert.ok(r.usage!.completion_tokens < 16);
    const stream = await t.client().completions.create({ model: BASE_MODEL, prompt, max_tokens: 16, temperature: 0, stop, stream: true });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) for (const c of chunk.choices) (text += c.text), (finish = c.finish_reason ?? finish);
    assert.equal(text, cut);
    assert.equal(finish, 'stop');
  });

  it('answers chat with the greedy continuation of the chat-templated prompt, streamed or not', async () => {
    const messages = [
      { role: 'system' as const, content: 'You are terse.' },
      { role: 'user' as const, content: 'Explain LoRA in one line.' },
    ];
    const tokenizer = await fixtureTokenizer();
    const templated = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
    const model = await loadFixtureModel();
    const [reference] = await generate(model, [templated], { maxNewTokens: 12, eosTokenId: tokenizer.eosTokenIds });
    const expectedChat = await decodeOutput(reference!.slice(templated.length));

    const r = await t.client().chat.completions.create({ model: BASE_MODEL, messages, max_tokens: 12, temperature: 0 });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0]!.message.role, 'assistant');
    assert.equal(r.choices[0]!.message.content, expectedChat);
    assert.equal(r.usage!.prompt_tokens, templated.length);

    const stream = await t.client().chat.completions.create({ model: BASE_MODEL, messages, max_tokens: 12, temperature: 0, stream: true });
    let text = '';
    let role: string | undefined;
    let finish: string | null = null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk');
      for (const c of chunk.choices) {
        role ??= c.delta.role;
        text += c.delta.content ?? '';
        finish = c.finish_reason ?? finish;
      }
    }
    assert.equal(role, 'assistant');
    assert.equal(text, expectedChat);
    assert.equal(finish, r.choices[0]!.finish_reason);
  });

  it('repeats a seeded sampled completion exactly', async () => {
    const params = { model: BASE_MODEL, prompt, max_tokens: 16, temperature: 1, top_p: 0.9, seed: 1234 };
    const a = await t.client().completions.create(params);
    const b = await t.client().completions.create(params);
    assert.equal(a.choices[0]!.text, b.choices[0]!.text);
  });

  it('applies the repetition_penalty extension as transformers does', async () => {
    const model = await loadFixtureModel();
    const [reference] = await generate(model, [prompt], { maxNewTokens: 16, eosTokenId: null, repetitionPenalty: 1.5 });
    const body = { model: BASE_MODEL, prompt, max_tokens: 16, temperature: 0, repetition_penalty: 1.5 };
    const { status, json } = await rawRequest(t.baseURL, 'POST', '/completions', JSON.stringify(body));
    assert.equal(status, 200);
    assert.equal((json as { choices: { text: string }[] }).choices[0]!.text, await decodeOutput(reference!.slice(8)));
  });

  it('lists the base model, answers /health, and exposes Prometheus metrics', async () => {
    const models = await t.client().models.list();
    assert.deepEqual(models.data.map((m) => m.id), [BASE_MODEL]);
    const health = await fetch(`${t.baseURL.replace(/\/v1$/, '')}/health`);
    assert.equal(health.status, 200);
    const metrics = await (await fetch(`${t.baseURL.replace(/\/v1$/, '')}/metrics`)).text();
    for (const name of ['loraforge_queue_depth', 'loraforge_generation_tokens_total', 'loraforge_loaded_adapters', 'loraforge_http_requests_total']) {
      assert.match(metrics, new RegExp(`^# TYPE ${name} `, 'm'));
    }
    assert.match(metrics, /^loraforge_http_requests_total\{route="\/v1\/completions",status="200"\} \d+$/m);
  });

  it('reports the server\'s memory in /metrics: resident, V8 heap reserved and used, external and ArrayBuffers', async () => {
    const metrics = await (await fetch(`${t.baseURL.replace(/\/v1$/, '')}/metrics`)).text();
    // NaN (every comparison false) when a line is missing.
    const bytes = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(metrics)?.[1]);
    const heapUsed = bytes('nodejs_heap_size_used_bytes');
    const heapTotal = bytes('nodejs_heap_size_total_bytes');
    assert.ok(heapUsed > 0 && heapUsed <= heapTotal && heapTotal < bytes('process_resident_memory_bytes'), metrics);
    // The fixture model's weights are typed arrays outside the heap. (Node documents arrayBuffers as part of external,
    // but with SharedArrayBuffers, which the CPU backend's buffers are, arrayBuffers was seen above external.)
    assert.ok(bytes('nodejs_array_buffers_bytes') > 0 && bytes('nodejs_external_memory_bytes') > 0, metrics);
  });
});
