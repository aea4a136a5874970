import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BASE_MODEL, fixturePrompt, rawRequest, startServer, type TestServer } from './harness.js';

/** Polls /metrics until `pattern` matches (the server acts on disconnects at its next step boundary). */
async function waitForMetric(baseURL: string, pattern: RegExp): Promise<string> {
  const origin = baseURL.replace(/\/v1$/, '');
  for (let i = 0; i < 200; i++) {
    const text = await (await fetch(`${origin}/metrics`)).text();
    if (pattern.test(text)) return text;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`metrics never matched ${pattern}`);
}

describe('limits: queue length, timeouts, disconnects', () => {
  let t: TestServer;
  let prompt: number[];
  before(async () => {
    t = await startServer({ maxBatch: 1, maxQueue: 1 });
    prompt = await fixturePrompt();
  });
  after(() => t.server.close());

  it('answers 429 when the queue is full, and a client disconnect cancels its generation', async () => {
    const client = t.client();
    const running = await client.completions.create({ model: BASE_MODEL, prompt, max_tokens: 240, temperature: 0, stream: true });
    const iterator = running[Symbol.asyncIterator]();
    await iterator.next();
    const queuedAbort = new AbortController();
    const queued = client.completions.create({ model: BASE_MODEL, prompt, max_tokens: 4, temperature: 0 }, { signal: queuedAbort.signal });
    await waitForMetric(t.baseURL, /^loraforge_queue_depth 1$/m);
    await assert.rejects(client.completions.create({ model: BASE_MODEL, prompt, max_tokens: 4 }), (e: { status?: number; code?: string }) => e.status === 429 && e.code === 'queue_full');

    running.controller.abort();
    queuedAbort.abort();
    await assert.rejects(queued);
    const metrics = await waitForMetric(t.baseURL, /^loraforge_requests_total\{model_name="tiny-llama",finished_reason="abort"\} 2$/m);
    assert.match(metrics, /^loraforge_running_requests 0$/m);
    assert.match(metrics, /^loraforge_queue_depth 0$/m);
    const after = await client.completions.create({ model: BASE_MODEL, prompt, max_tokens: 4, temperature: 0 });
    assert.equal(after.choices[0]!.finish_reason, 'length');
  });
});

describe('limits: a request that runs past the timeout ends with an error', () => {
  let t: TestServer;
  let prompt: number[];
  before(async () => {
    t = await startServer({ requestTimeoutMs: 0 });
    prompt = await fixturePrompt();
  });
  after(() => t.server.close());

  it('answers 504 without streaming and an error event when streaming', async () => {
    const { status, json } = await rawRequest(t.baseURL, 'POST', '/completions', JSON.stringify({ model: BASE_MODEL, prompt, max_tokens: 8 }));
    assert.equal(status, 504);
    assert.equal((json as { error: { code: string } }).error.code, 'request_timeout');
    const stream = await t.client().chat.completions.create({ model: BASE_MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 8, stream: true });
    await assert.rejects(
      (async () => {
        for await (const _ of stream);
      })(),
      /did not finish/,
    );
  });
});
