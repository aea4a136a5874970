import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { runNodeScript } from '../helpers/run-node.js';
import { startServe } from '../../bench/serve-child.js';
import { fixturePath } from '../helpers/fixtures.js';
import { percentile, schedule, streamSeed, type ScheduleOptions } from '../../bench/load-gen.js';

const LOAD = fileURLToPath(new URL('../../bench/load.js', import.meta.url));

const MODELS = ['tiny-llama', 'lora', 'lora_qv', 'rslora', 'dora'];
const OPTIONS: ScheduleOptions = { seed: 7, rate: 4, durationS: 30, promptMean: 32, outputMean: 16, sigma: 1, maxContext: 256, vocabSize: 384, models: MODELS };

describe('load generator schedule (bench/load-gen.ts)', () => {
  it('is reproducible: the same seed gives the same arrivals, models, prompts and lengths; another seed does not', () => {
    const a = schedule(OPTIONS);
    assert.deepEqual(schedule({ ...OPTIONS }), a);
    const b = schedule({ ...OPTIONS, seed: 8 });
    assert.notDeepEqual(b.map((r) => r.atMs), a.map((r) => r.atMs));
    assert.notEqual(streamSeed(0, 0), streamSeed(0, 1));
    assert.notEqual(streamSeed(0, 0), streamSeed(1, 0));
  });

  it('draws Poisson arrivals at the rate, lengths clipped to the context, every model used', () => {
    const reqs = schedule({ ...OPTIONS, rate: 100, durationS: 100 });
    // 10,000 expected arrivals: the count's standard deviation is 100.
    assert.ok(Math.abs(reqs.length - 10_000) < 400, `${reqs.length} arrivals`);
    for (let i = 1; i < reqs.length; i++) assert.ok(reqs[i]!.atMs >= reqs[i - 1]!.atMs);
    assert.ok(reqs.at(-1)!.atMs < 100_000);
    const gaps = reqs.slice(1).map((r, i) => r.atMs - reqs[i]!.atMs);
    const meanGap = gaps.reduce((s, g) => s + g, 0) / gaps.length;
    assert.ok(Math.abs(meanGap - 10) < 0.4, `mean gap ${meanGap} ms`);
    // Exponential gaps: about e^-1 of them exceed the mean.
    const over = gaps.filter((g) => g > 10).length / gaps.length;
    assert.ok(Math.abs(over - Math.exp(-1)) < 0.02, `${over} of gaps over the mean`);
    for (const r of reqs) {
      assert.ok(r.promptIds.length >= 1 && r.outputTokens >= 1 && r.promptIds.length + r.outputTokens <= 256);
      assert.ok(r.promptIds.every((id) => Number.isInteger(id) && id >= 0 && id < 384));
    }
    for (const m of MODELS) {
      const share = reqs.filter((r) => r.model === m).length / reqs.length;
      assert.ok(Math.abs(share - 0.2) < 0.02, `${m}: ${share}`);
    }
    // Long-tailed (lognormal, sigma 1): the mean is about e^(1/2) times the median, p99 about 10x the median.
    const prompts = reqs.map((r) => r.promptIds.length);
    const mean = prompts.reduce((s, x) => s + x, 0) / prompts.length;
    assert.ok(Math.abs(mean - 32) < 2, `prompt mean ${mean}`);
    const ratio = percentile(prompts, 99)! / percentile(prompts, 50)!;
    assert.ok(ratio > 7 && ratio < 14, `prompt p99 / p50 = ${ratio}`);
  });

  it('clips to a small context: no prompt leaves less than one output token', () => {
    for (const r of schedule({ ...OPTIONS, promptMean: 200, outputMean: 200, maxContext: 16 })) {
      assert.ok(r.promptIds.length <= 15 && r.promptIds.length + r.outputTokens <= 16);
    }
  });
});

describe('nearest-rank percentiles', () => {
  it('picks the smallest value with at least p% at or below it', () => {
    const sample = [15, 20, 35, 40, 50];
    assert.equal(percentile(sample, 5), 15);
    assert.equal(percentile(sample, 30), 20);
    assert.equal(percentile(sample, 40), 20);
    assert.equal(percentile(sample, 50), 35);
    assert.equal(percentile(sample, 99), 50);
    assert.equal(percentile(sample, 100), 50);
    const hundred = Array.from({ length: 100 }, (_, i) => 100 - i);
    assert.equal(percentile(hundred, 50), 50);
    assert.equal(percentile(hundred, 99), 99);
    assert.equal(percentile([7], 99), 7);
    assert.equal(percentile([], 50), null);
    assert.throws(() => percentile(sample, 0));
  });
});

interface RateLine {
  rate: number;
  requests: number;
  completed: number;
  failed: number;
  duration_s: number;
  throughput_tok_s: number;
  req_s: number;
  ttft_p50_ms: number;
  ttft_p99_ms: number;
  tpot_p50_ms: number;
  tpot_p99_ms: number;
  e2e_p50_ms: number;
  e2e_p99_ms: number;
}

const runLoad = (args: string[]) => runNodeScript(LOAD, args);

describe('bench/load.js against `loraforge serve` on tiny-llama and its 4 adapters', () => {
  it('sends the seeded schedule open-loop and every request completes with the drawn output length', async () => {
    const { code, stdout, stderr } = await runLoad(['--rates', '3,6', '--duration', '2', '--seed', '5', '--prompt-mean', '24', '--output-mean', '12']);
    assert.equal(stderr, '');
    assert.equal(code, 0);
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as RateLine);
    assert.deepEqual(lines.map((l) => l.rate), [3, 6]);
    for (const [i, line] of lines.entries()) {
      const expected = schedule({ seed: streamSeed(5, i), rate: line.rate, durationS: 2, promptMean: 24, outputMean: 12, sigma: 1, maxContext: 256, vocabSize: 384, models: MODELS });
      assert.deepEqual(Object.keys(line), ['rate', 'requests', 'completed', 'failed', 'duration_s', 'throughput_tok_s', 'req_s', 'ttft_p50_ms', 'ttft_p99_ms', 'tpot_p50_ms', 'tpot_p99_ms', 'e2e_p50_ms', 'e2e_p99_ms', 'send_lag_p99_ms']);
      assert.ok(expected.length > 0);
      assert.equal(line.requests, expected.length);
      assert.equal(line.completed, expected.length);
      assert.equal(line.failed, 0);
      // Every request generated exactly its drawn length, so the tokens counted are the schedule's.
      const tokens = expected.reduce((s, r) => s + r.outputTokens, 0);
      // throughput_tok_s is rounded to 0.1 and duration_s to 0.001: their product is off by at most the sum of both.
      const bound = 0.05 * line.duration_s + 0.0005 * line.throughput_tok_s + 1e-6;
      assert.ok(Math.abs(line.throughput_tok_s * line.duration_s - tokens) <= bound, `${line.throughput_tok_s} tok/s over ${line.duration_s} s, ${tokens} tokens drawn`);
      assert.ok(line.duration_s >= expected.at(-1)!.atMs / 1000, 'the rate lasted until its last arrival at least');
      assert.ok(line.ttft_p50_ms > 0 && line.ttft_p50_ms <= line.ttft_p99_ms);
      assert.ok(line.tpot_p50_ms > 0 && line.tpot_p50_ms <= line.tpot_p99_ms);
      assert.ok(line.e2e_p50_ms >= line.ttft_p50_ms && line.e2e_p50_ms <= line.e2e_p99_ms);
    }
  });

  it('with --url drives a running server over every model it lists, and needs the context and vocabulary', async () => {
    const server = await startServe({ modelDir: fixturePath('tiny-llama'), adapters: [{ name: 'lora', path: fixturePath('tiny-llama-lora') }] });
    try {
      const missing = await runLoad(['--url', server.baseURL, '--rates', '4', '--duration', '1']);
      assert.equal(missing.code, 2);
      assert.equal(missing.stderr.trim(), "The model's context and vocabulary size are unknown: pass --max-context N and --vocab N (or --model DIR with a config.json).");
      const { code, stdout, stderr } = await runLoad(['--url', `${server.baseURL}/`, '--vocab', '384', '--max-context', '64', '--rates', '4', '--duration', '1.5', '--seed', '3', '--output-mean', '8']);
      assert.equal(stderr, '');
      assert.equal(code, 0);
      const line = JSON.parse(stdout) as RateLine;
      const expected = schedule({ seed: streamSeed(3, 0), rate: 4, durationS: 1.5, promptMean: 64, outputMean: 8, sigma: 1, maxContext: 64, vocabSize: 384, models: ['tiny-llama', 'lora'] });
      assert.ok(expected.length > 0);
      assert.equal(line.requests, expected.length);
      assert.equal(line.completed, expected.length);
    } finally {
      await server.stop();
    }
  });

  it('refuses a bad option in one sentence', async () => {
    const { code, stderr } = await runLoad(['--rates', '2,x']);
    assert.notEqual(code, 0);
    assert.match(stderr, /--rates must be a number of at least/);
  });
});
