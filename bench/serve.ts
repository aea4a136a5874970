/**
 * Multi-adapter serving throughput: one batch of `batch` sequences decoded by the server's scheduler, with every
 * row on the base model, or the rows spread over 1, 8 or 64 distinct LoRA adapters (r16 on all seven linears, and
 * on a mixture-of-experts shape such as moe-small or qwen3-30b-a3b on the experts too).
 * The base projections run once per step for the whole batch; every row's low-rank product follows in one gathered
 * call per group of projections that share an input (q, k, v; o; gate, up; down: multiLoraLinearGroup). Decode
 * steps run under the backend's batch-invariant matmuls, as served.
 * Prints one JSON line per case, with tokens/s relative to the base-only batch (the goal is >= 0.8).
 *
 *   npm run build && node dist/bench/serve.js                                   (CPU, a small random Llama)
 *   node dist/bench/serve.js --device cuda --dtype bfloat16 --shape llama-1b --prompt 128 --new 128
 *                                                                               (GPU, beside bench/peft_serve_baseline.py)
 * Adapters are PEFT-initialised (B = 0): their values do not change the work done. They are stored in the model's
 * dtype, as the server stores them by default; --adapter-dtype float32 keeps PEFT's float32. --stagger N lets the
 * rows finish over the last N steps instead of together, so the batch's composition changes at each of them (and
 * every layer plans its adapters anew), as in a server whose requests come and go.
 */
import { parseArgs } from 'node:util';
import { CudaBackend, registerCudaBackend } from '../src/backend/cuda/index.js';
import { getBackend } from '../src/backend/registry.js';
import type { CausalLM } from '../src/models/causal-lm.js';
import { getPeftModel } from '../src/peft/index.js';
import { kernelsByKind } from './profile-summary.js';
import { benchConfig, randomBenchModel } from './shapes.js';
import { GREEDY_SAMPLING } from '../src/serve/generation-params.js';
import { Scheduler } from '../src/serve/scheduler.js';
import type { DType } from '../src/tensor/dtype.js';


interface Args {
  device: string;
  dtype: DType;
  /** A shape of bench/shapes.json: "small" suits two CPU cores; "llama-1b" and "qwen3-8b" match bench/peft_serve_baseline.py. */
  shape: string;
  batch: number;
  prompt: number;
  new: number;
  adapters: number[];
  /** dtype of the adapters' tensors: 'model' (the server's default) or e.g. float32 (as PEFT computes them). */
  adapterDtype: DType | 'model';
  /** Rounds over all cases; each case reports its median round (rounds interleave cases, so drift hits all alike). */
  repeat: number;
  /** Rows finish over the last `stagger` steps (tokensFor); 1: all together. */
  stagger: number;
}

function parse(): Args {
  const { values } = parseArgs({
    options: {
      device: { type: 'string', default: 'cpu' },
      dtype: { type: 'string', default: 'float32' },
      shape: { type: 'string', default: 'small' },
      batch: { type: 'string', default: '64' },
      prompt: { type: 'string', default: '16' },
      new: { type: 'string', default: '16' },
      adapters: { type: 'string', default: '0,1,8,64' },
      repeat: { type: 'string', default: '3' },
      stagger: { type: 'string', default: '1' },
      'adapter-dtype': { type: 'string', default: 'model' },
    },
  });
  return {
    device: values.device!,
    dtype: values.dtype as DType,
    shape: values.shape!,
    batch: Number(values.batch),
    prompt: Number(values.prompt),
    new: Number(values.new),
    adapters: values.adapters!.split(',').map(Number),
    repeat: Number(values.repeat),
    stagger: Number(values.stagger),
    adapterDtype: values['adapter-dtype'] as DType | 'model',
  };
}

/** Decodes one batch; row i uses rowNames[i]. Returns decode-phase and end-to-end generated tokens per second. */
/**
 * Tokens row i generates: newTokens, or with `stagger`, newTokens - i % stagger, so that rows finish one after another
 * over the last steps and the batch's composition changes at every one of them (as it does in a busy server, where
 * requests join and leave), which makes every layer build new multi-adapter plans.
 */
function tokensFor(row: number, newTokens: number, stagger: number): number {
  return stagger > 1 ? newTokens - (row % stagger) : newTokens;
}

async function runBatch(model: CausalLM, prompts: number[][], rowNames: readonly string[], newTokens: number, stagger: number, onDecodeStart?: () => void): Promise<{ decode: number; endToEnd: number }> {
  let prefilled = 0;
  let decodeStart = 0;
  const scheduler = new Scheduler(model, {
    maxBatch: prompts.length,
    maxQueue: prompts.length,
    onTokens: (kind) => {
      if (kind === 'prompt' && ++prefilled === prompts.length) {
        onDecodeStart?.();
        decodeStart = performance.now();
      }
    },
  });
  const start = performance.now();
  await Promise.all(
    prompts.map((promptIds, i) =>
      scheduler.submit({ promptIds, adapterName: rowNames[i]!, maxTokens: tokensFor(i, newTokens, stagger), sampling: GREEDY_SAMPLING, stopTokenIds: new Set(), emitStopToken: false, logprobs: null, timeoutMs: 3_600_000, onToken: () => false }),
    ),
  );
  const end = performance.now();
  await scheduler.close();
  const generated = prompts.reduce((sum, _, i) => sum + tokensFor(i, newTokens, stagger), 0);
  return { decode: (generated - prompts.length) / ((end - decodeStart) / 1000), endToEnd: generated / ((end - start) / 1000) };
}

async function main(): Promise<void> {
  const args = parse();
  if (args.device.startsWith('cuda')) registerCudaBackend();
  const config = benchConfig(args.shape);
  const model = await randomBenchModel(config, args.device, args.dtype);
  const most = Math.max(...args.adapters);
  // On a mixture-of-experts shape the adapters also cover every expert (PEFT's target_parameters), as issue 14's serving bench asks.
  const lora = { r: 16, loraAlpha: 16, loraDropout: 0, targetModules: 'all-linear' as const, ...(config.moe ? { targetParameters: ['experts.gate_up_proj', 'experts.down_proj'] } : {}) };
  if (most > 0) {
    const peft = getPeftModel(model, lora, 'adapter-0');
    for (let i = 1; i < most; i++) peft.addAdapter(`adapter-${i}`, lora);
    // As the server stores them (--adapter-dtype, default the model's dtype).
    for (let i = 0; i < most; i++) peft.castAdapter(`adapter-${i}`, args.adapterDtype === 'model' ? args.dtype : args.adapterDtype);
  }
  let seed = 12345;
  const prompts = Array.from({ length: args.batch }, () =>
    Array.from({ length: args.prompt }, () => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed % config.vocabSize;
    }),
  );
  const rowNames = (count: number) => prompts.map((_, i) => (count === 0 ? '__base__' : `adapter-${i % count}`));
  await runBatch(model, prompts, rowNames(Math.max(...args.adapters)), 4, 1);
  const rounds = new Map<number, { decode: number; endToEnd: number }[]>(args.adapters.map((c) => [c, []]));
  for (let round = 0; round < args.repeat; round++) {
    for (const count of args.adapters) rounds.get(count)!.push(await runBatch(model, prompts, rowNames(count), args.new, args.stagger));
  }
  if (process.env['LORAFORGE_PROFILE'] === '1') await profile(model, prompts, rowNames, args);
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const base = rounds.has(0) ? median(rounds.get(0)!.map((r) => r.decode)) : 0;
  for (const [count, results] of rounds) {
    const decode = median(results.map((r) => r.decode));
    console.log(
      JSON.stringify({
        bench: 'serve',
        stack: 'loraforge',
        device: args.device,
        dtype: args.dtype,
        shape: args.shape,
        batch: args.batch,
        prompt_tokens: args.prompt,
        new_tokens: args.new,
        stagger: args.stagger > 1 ? args.stagger : null,
        adapters: count,
        adapter_dtype: count === 0 ? null : args.adapterDtype === 'model' ? args.dtype : args.adapterDtype,
        decode_tokens_per_s: Number(decode.toFixed(1)),
        end_to_end_tokens_per_s: Number(median(results.map((r) => r.endToEnd)).toFixed(1)),
        relative_to_base: base > 0 ? Number((decode / base).toFixed(3)) : null,
        rounds: args.repeat,
      }),
    );
  }
}

/**
 * With LORAFORGE_PROFILE=1 on CUDA, per case: one batch of 16 new tokens untimed per launch, for the wall time per
 * decode step and the part of it the host spent blocked on the device (about 0 when steps are host-bound; the
 * rest of the step is the host's own work); then one with every decode launch bracketed by events (from the step
 * after the last prefill), printed as device milliseconds per step by kernel kind. Event times include any wait
 * for the host between launches, so they overstate kernels that follow slow host work.
 */
async function profile(model: CausalLM, prompts: number[][], rowNames: (count: number) => string[], args: Args): Promise<void> {
  const backend = getBackend(model.device);
  if (!(backend instanceof CudaBackend) || !backend.runtime.profiler) return;
  const profiler = backend.runtime.profiler;
  const newTokens = 16;
  const steps = newTokens - 1;
  for (const count of [...new Set([0, ...args.adapters])]) {
    // First unprofiled: the time the host spends blocked waiting for the device (near 0 when steps are host-bound).
    let waitStart = 0;
    let plainStart = 0;
    await runBatch(model, prompts, rowNames(count), newTokens, 1, () => {
      waitStart = backend.runtime.hostWaitMs;
      plainStart = performance.now();
    });
    const plainWallMs = performance.now() - plainStart;
    const waitMs = backend.runtime.hostWaitMs - waitStart;
    let start = 0;
    await runBatch(model, prompts, rowNames(count), newTokens, 1, () => {
      profiler.start();
      start = performance.now();
    });
    const wallMs = performance.now() - start;
    const entries = profiler.report();
    const perStep = (ms: number) => +(ms / steps).toFixed(3);
    console.log(
      JSON.stringify({
        bench: 'serve-profile',
        adapters: count,
        decode_steps: steps,
        unprofiled_wall_ms_per_step: perStep(plainWallMs),
        unprofiled_host_wait_ms_per_step: perStep(waitMs),
        wall_ms_per_step: perStep(wallMs),
        kernel_ms_per_step: perStep(entries.reduce((s, e) => s + e.ms, 0)),
        launches_per_step: Math.round(entries.reduce((s, e) => s + e.calls, 0) / steps),
        by_kind: kernelsByKind(entries).map((k) => ({ kind: k.kind, calls_per_step: +(k.calls / steps).toFixed(1), ms_per_step: perStep(k.ms) })),
      }),
    );
  }
}

await main();
