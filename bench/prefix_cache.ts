/**
 * Prefix caching: time to first token of a request whose prompt is a shared prefix (a system prompt, 1,024 tokens
 * by default) plus a short suffix of its own, through the server's scheduler, in three cases:
 *   - off:  the scheduler without prefix caching (dense prefill of the whole prompt);
 *   - cold: prefix caching on, nothing cached yet (the pool is reopened before each round);
 *   - warm: prefix caching on, after another request with the same prefix and another suffix published it.
 * Each case reports its median over the rounds, the prompt tokens it found cached, and whether its greedy tokens
 * equal the "off" case's (they must: warm prefills are batch-invariant). One JSON line per case.
 *
 *   npm run build && node dist/bench/prefix_cache.js                 (CPU, bench/shapes.json's "small" Llama)
 *   node dist/bench/prefix_cache.js --device cuda --dtype bfloat16 --shape llama-1b
 * The goal: warm time to first token at most 0.2x the cold one for a 1,024-token prefix.
 */
import { parseArgs } from 'node:util';
import { registerCudaBackend } from '../src/backend/cuda/index.js';
import { GREEDY_SAMPLING } from '../src/serve/generation-params.js';
import { Scheduler } from '../src/serve/scheduler.js';
import type { DType } from '../src/tensor/dtype.js';
import { benchConfig, randomBenchModel } from './shapes.js';

type Case = 'off' | 'cold' | 'warm';

interface Measured {
  readonly ttftMs: number;
  readonly cachedTokens: number;
  readonly tokens: readonly number[];
}

const { values } = parseArgs({
  options: {
    device: { type: 'string', default: 'cpu' },
    dtype: { type: 'string', default: 'float32' },
    shape: { type: 'string', default: 'small' },
    prefix: { type: 'string', default: '1024' },
    suffix: { type: 'string', default: '16' },
    new: { type: 'string', default: '8' },
    repeat: { type: 'string', default: '3' },
  },
});
const device = values.device!;
const dtype = values.dtype as DType;
const prefixTokens = Number(values.prefix);
const suffixTokens = Number(values.suffix);
const newTokens = Number(values.new);
const repeat = Number(values.repeat);

let seed = 2024;
function randomTokens(n: number, vocab: number): number[] {
  return Array.from({ length: n }, () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed % vocab;
  });
}

/** One request through `scheduler`: milliseconds from submission to its first token, and its tokens. */
async function ttft(scheduler: Scheduler, promptIds: number[]): Promise<Measured> {
  const tokens: number[] = [];
  let first = 0;
  const start = performance.now();
  const outcome = await scheduler.submit({
    promptIds, adapterName: '__base__', maxTokens: newTokens, sampling: GREEDY_SAMPLING, stopTokenIds: new Set(), emitStopToken: false, logprobs: null, timeoutMs: 3_600_000,
    onToken: (t) => {
      if (tokens.length === 0) first = performance.now();
      tokens.push(t);
      return false;
    },
  });
  if (outcome.status !== 'finished') throw new Error(`the request ended ${outcome.status}`);
  return { ttftMs: first - start, cachedTokens: outcome.cachedTokens, tokens };
}

async function main(): Promise<void> {
  if (device.startsWith('cuda')) registerCudaBackend();
  const model = await randomBenchModel(benchConfig(values.shape!), device, dtype);
  const vocab = model.config.vocabSize;
  const system = randomTokens(prefixTokens, vocab);
  const results = new Map<Case, Measured[]>([['off', []], ['cold', []], ['warm', []]]);
  // One untimed request first: kernels compiled, pools and workers started.
  const warmup = new Scheduler(model, { maxBatch: 1, maxQueue: 1 });
  await ttft(warmup, [...system, ...randomTokens(suffixTokens, vocab)]);
  await warmup.close();
  for (let round = 0; round < repeat; round++) {
    const first = [...system, ...randomTokens(suffixTokens, vocab)];
    const second = [...system, ...randomTokens(suffixTokens, vocab)];
    const off = new Scheduler(model, { maxBatch: 1, maxQueue: 1 });
    results.get('off')!.push(await ttft(off, second));
    await off.close();
    model.releaseKvPool();
    const on = new Scheduler(model, { maxBatch: 1, maxQueue: 1, prefixCaching: true });
    // "cold" publishes the prefix with its own suffix; "warm" then runs the prompt "off" ran.
    results.get('cold')!.push(await ttft(on, first));
    results.get('warm')!.push(await ttft(on, second));
    await on.close();
    model.releaseKvPool();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const coldMs = median(results.get('cold')!.map((r) => r.ttftMs));
  const offRuns = results.get('off')!;
  for (const [name, runs] of results) {
    const ms = median(runs.map((r) => r.ttftMs));
    console.log(JSON.stringify({
      bench: 'prefix-cache',
      stack: 'loraforge',
      device,
      dtype,
      shape: values.shape,
      case: name,
      prefix_tokens: prefixTokens,
      suffix_tokens: suffixTokens,
      new_tokens: newTokens,
      ttft_ms: Number(ms.toFixed(1)),
      cached_tokens: median(runs.map((r) => r.cachedTokens)),
      relative_to_cold: Number((ms / coldMs).toFixed(3)),
      // Warm runs the prompt "off" ran in the same round; cold ran another suffix, so it has nothing to match.
      same_tokens_as_off: name === 'cold' ? null : runs.every((r, i) => r.tokens.join() === offRuns[i]!.tokens.join()),
      rounds: repeat,
    }));
  }
}

await main();
