import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type OpenAI from 'openai';
import { adapterDir, BASE_MODEL, inputRow, startServer, type AdapterVariant, type TestServer } from './harness.js';

const CLIENTS = 32;
const REQUESTS = 200;
const ADAPTERS: AdapterVariant[] = ['lora', 'lora_qv', 'rslora', 'dora'];
const MODELS = [...ADAPTERS, BASE_MODEL];

/** One kind of request; the load test sends each kind many times, streamed or not, completion or chat. */
interface Job {
  readonly model: string;
  readonly prompt: number[];
  readonly maxTokens: number;
  /** Seeded sampling must be batch-independent too. */
  readonly sampled: boolean;
}

async function complete(client: OpenAI, job: Job, stream: boolean): Promise<{ text: string; tokens: number }> {
  const params = { model: job.model, prompt: job.prompt, max_tokens: job.maxTokens, ...(job.sampled ? { temperature: 0.8, seed: 7 } : { temperature: 0 }) };
  if (!stream) {
    const r = await client.completions.create(params);
    return { text: r.choices[0]!.text, tokens: r.usage!.completion_tokens };
  }
  let text = '';
  let tokens = 0;
  for await (const chunk of await client.completions.create({ ...params, stream: true, stream_options: { include_usage: true } })) {
    for (const c of chunk.choices) text += c.text;
    if (chunk.usage) tokens = chunk.usage.completion_tokens;
  }
  return { text, tokens };
}

describe('load: 32 concurrent clients, 4 adapters and the base, 200 requests', () => {
  let t: TestServer;
  const jobs: Job[] = [];
  before(async () => {
    t = await startServer({ adapters: ADAPTERS.map((v) => ({ name: v, path: adapterDir(v) })), maxBatch: 32, maxQueue: 256 });
    // 5 models x 6 prompts (3 rows, 2 lengths each), with varied output lengths.
    for (const [m, model] of MODELS.entries()) {
      for (let p = 0; p < 6; p++) {
        jobs.push({ model, prompt: await inputRow(p % 3, 4 + 3 * p), maxTokens: 6 + ((m * 7 + p * 5) % 19), sampled: (m + p) % 4 === 0 });
      }
    }
  });
  after(() => t.server.close());

  it('answers every request without error, each output equal to the same request sent alone', async () => {
    const client = t.client();
    const alone: string[] = [];
    for (const job of jobs) alone.push((await complete(client, job, false)).text);

    let next = 0;
    let completionTokens = 0;
    const mismatches: string[] = [];
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        for (let i = next++; i < REQUESTS; i = next++) {
          const j = (i * 7) % jobs.length;
          const { text, tokens } = await complete(client, jobs[j]!, i % 2 === 0);
          completionTokens += tokens;
          if (text !== alone[j]) mismatches.push(`request ${i} (${jobs[j]!.model}): ${JSON.stringify(text)} != ${JSON.stringify(alone[j])}`);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    console.log(
      JSON.stringify({
        bench: 'serve-load',
        clients: CLIENTS,
        requests: REQUESTS,
        adapters: ADAPTERS.length,
        completion_tokens: completionTokens,
        seconds: Number(seconds.toFixed(3)),
        tokens_per_s: Number((completionTokens / seconds).toFixed(1)),
        requests_per_s: Number((REQUESTS / seconds).toFixed(1)),
      }),
    );
    assert.deepEqual(mismatches, []);
    const metrics = await (await fetch(`${t.baseURL.replace(/\/v1$/, '')}/metrics`)).text();
    assert.doesNotMatch(metrics, /status="5\d\d"/);
    assert.doesNotMatch(metrics, /reason="(error|timeout|cancelled)"/);
  });
});
