import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { adapterDir, BASE_MODEL, inputRow, postOk, startServer, type TestServer } from './harness.js';
import { parseExposition, sampleValue, type Family } from './metrics-exposition.js';

interface Usage {
  usage: { prompt_tokens: number; completion_tokens: number };
}

async function scrape(t: TestServer): Promise<string> {
  const res = await fetch(`${t.baseURL.replace(/\/v1$/, '')}/metrics`);
  assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  return res.text();
}

/** Scrapes until `done` holds (the server ends a dropped request at its next step boundary). */
async function scrapeUntil(t: TestServer, done: (families: Family[]) => boolean): Promise<Family[]> {
  for (let i = 0; i < 300; i++) {
    const families = parseExposition(await scrape(t));
    if (done(families)) return families;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('the metrics never reached the expected state');
}

function hasSample(families: Family[], name: string, labels: Record<string, string>): boolean {
  return families.some((f) => f.samples.some((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)));
}

/** Streams a completion over a raw socket, reads `chunks` data events, then destroys the socket; resolves with them. */
function dropStreamAfter(t: TestServer, body: object, chunks: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${t.baseURL}/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let events = 0;
      res.on('data', (data: Buffer) => {
        events += data.toString().split('\n\n').filter((e) => e.startsWith('data: {')).length;
        if (events >= chunks) {
          req.destroy();
          resolve(events);
        }
      });
      res.on('error', () => {});
    });
    req.on('error', (error) => {
      if (!req.destroyed) reject(error);
    });
    req.end(JSON.stringify(body));
  });
}

describe('metrics: counters and histograms of generation requests', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ adapters: [{ name: 'lora', path: adapterDir('lora') }, { name: 'rslora', path: adapterDir('rslora') }, { name: 'lora_qv', path: adapterDir('lora_qv') }] });
  });
  after(() => t.server.close());

  it('counts exactly the prompt and generated tokens of k requests per model, with k observations per histogram', async () => {
    const base = [await inputRow(0, 8), await inputRow(1, 5), await inputRow(0, 3)];
    const lora = [await inputRow(1, 8), await inputRow(0, 6)];
    const usages: Usage[] = [];
    for (const prompt of base) usages.push(await postOk<Usage>(t.baseURL, '/completions', { model: BASE_MODEL, prompt, max_tokens: 6, temperature: 0, ignore_eos: true }));
    await Promise.all(lora.map(async (prompt) => usages.push(await postOk<Usage>(t.baseURL, '/completions', { model: 'lora', prompt, max_tokens: 4, temperature: 0, ignore_eos: true }))));
    assert.deepEqual(usages.map((u) => u.usage.completion_tokens).sort(), [4, 4, 6, 6, 6]);

    const families = parseExposition(await scrape(t));
    for (const [model, prompts, tokens] of [[BASE_MODEL, base, 6], ['lora', lora, 4]] as const) {
      const k = prompts.length;
      const m = { model_name: model };
      assert.equal(sampleValue(families, 'loraforge_prompt_tokens_total', m), prompts.reduce((n, p) => n + p.length, 0));
      assert.equal(sampleValue(families, 'loraforge_generation_tokens_total', m), k * tokens);
      assert.equal(sampleValue(families, 'loraforge_requests_total', { ...m, finished_reason: 'length' }), k);
      assert.equal(hasSample(families, 'loraforge_requests_total', { ...m, finished_reason: 'stop' }), false);
      for (const h of ['request_queue_time', 'time_to_first_token', 'time_per_output_token', 'e2e_request_latency']) {
        assert.equal(sampleValue(families, `loraforge_${h}_seconds_count`, m), k, h);
      }
      const sum = (h: string) => sampleValue(families, `loraforge_${h}_seconds_sum`, m);
      // Per request: queued after arrival, first token after leaving the queue, the rest of the tokens before the end.
      assert.ok(sum('request_queue_time') >= 0);
      assert.ok(sum('time_to_first_token') > sum('request_queue_time'));
      assert.ok(sum('e2e_request_latency') > sum('time_to_first_token'));
      assert.ok(sum('time_per_output_token') > 0);
      assert.ok(sum('e2e_request_latency') - sum('time_to_first_token') >= (tokens - 1) * sum('time_per_output_token') - 1e-9);
    }
  });

  it('counts a request of n choices once, its prompt once, every choice\'s tokens, and one time per output token per choice', async () => {
    const body = { model: 'lora_qv', prompt: await inputRow(0, 8), n: 3, max_tokens: 5, temperature: 1, seed: 7, ignore_eos: true };
    const answer = await postOk<Usage>(t.baseURL, '/completions', body);
    assert.deepEqual(answer.usage, { prompt_tokens: 8, completion_tokens: 15, total_tokens: 23 });
    const families = parseExposition(await scrape(t));
    const m = { model_name: 'lora_qv' };
    assert.equal(sampleValue(families, 'loraforge_requests_total', { ...m, finished_reason: 'length' }), 1);
    assert.equal(sampleValue(families, 'loraforge_prompt_tokens_total', m), 8);
    assert.equal(sampleValue(families, 'loraforge_generation_tokens_total', m), 15);
    assert.equal(sampleValue(families, 'loraforge_time_to_first_token_seconds_count', m), 1);
    assert.equal(sampleValue(families, 'loraforge_time_per_output_token_seconds_count', m), 3);
  });

  it('counts a stream the client drops mid-way as finished_reason "abort", with the tokens it generated', async () => {
    const received = await dropStreamAfter(t, { model: 'rslora', prompt: await inputRow(0, 8), max_tokens: 240, temperature: 0, ignore_eos: true, stream: true }, 3);
    const m = { model_name: 'rslora' };
    const families = await scrapeUntil(t, (f) => hasSample(f, 'loraforge_requests_total', { ...m, finished_reason: 'abort' }));
    assert.equal(sampleValue(families, 'loraforge_requests_total', { ...m, finished_reason: 'abort' }), 1);
    assert.equal(hasSample(families, 'loraforge_requests_total', { ...m, finished_reason: 'length' }), false);
    const generated = sampleValue(families, 'loraforge_generation_tokens_total', m);
    assert.ok(generated >= received && generated < 240, `${generated} tokens generated, ${received} received`);
    assert.equal(sampleValue(families, 'loraforge_prompt_tokens_total', m), 8);
    assert.equal(sampleValue(families, 'loraforge_e2e_request_latency_seconds_count', m), 1);
    assert.equal(sampleValue(families, 'loraforge_time_to_first_token_seconds_count', m), 1);
  });

  it('writes counters, not server-computed rates', async () => {
    const families = parseExposition(await scrape(t));
    assert.deepEqual(
      families.filter((f) => f.name.startsWith('loraforge_')).map((f) => `${f.name} ${f.type}`),
      [
        'loraforge_queue_depth gauge',
        'loraforge_running_requests gauge',
        'loraforge_loaded_adapters gauge',
        'loraforge_http_requests_total counter',
        'loraforge_requests_total counter',
        'loraforge_prompt_tokens_total counter',
        'loraforge_prompt_cached_tokens_total counter',
        'loraforge_generation_tokens_total counter',
        'loraforge_request_queue_time_seconds histogram',
        'loraforge_time_to_first_token_seconds histogram',
        'loraforge_time_per_output_token_seconds histogram',
        'loraforge_e2e_request_latency_seconds histogram',
      ],
    );
  });

  const promtool = spawnSync('promtool', ['--version']).status === 0;
  it('passes promtool check metrics with no warnings', { skip: promtool ? false : 'promtool is not on PATH (Debian: apt-get install prometheus); the strict parser above still checks the format' }, async () => {
    const result = spawnSync('promtool', ['check', 'metrics'], { input: await scrape(t), encoding: 'utf8' });
    assert.equal(`${result.stdout}${result.stderr}`, '');
    assert.equal(result.status, 0);
  });
});

describe('metrics: a stream that times out', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ requestTimeoutMs: 0 });
  });
  after(() => t.server.close());

  it('is counted as finished_reason "timeout", never as a finished request', async () => {
    const res = await fetch(`${t.baseURL}/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: BASE_MODEL, prompt: await inputRow(0, 8), max_tokens: 8, stream: true }),
    });
    assert.match(await res.text(), /"code":"request_timeout"/);
    const families = parseExposition(await scrape(t));
    const m = { model_name: BASE_MODEL };
    assert.equal(sampleValue(families, 'loraforge_requests_total', { ...m, finished_reason: 'timeout' }), 1);
    assert.deepEqual(families.find((f) => f.name === 'loraforge_requests_total')!.samples.length, 1);
    assert.equal(sampleValue(families, 'loraforge_e2e_request_latency_seconds_count', m), 1);
    assert.equal(hasSample(families, 'loraforge_time_to_first_token_seconds_count', m), false);
  });
});
