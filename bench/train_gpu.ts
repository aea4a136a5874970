// LoRA / QLoRA training throughput of loraforge on a CUDA GPU, the counterpart of bench/peft_baseline.py:
// random weights of real shapes (bench/shapes.json) built on the device, LoRA r=16 alpha 16 dropout 0 on all seven
// projections (mixture-of-experts cases: attention, plus the experts through target_parameters), AdamW, bf16, one
// step per scopeAsync. Prints one JSON line per case:
//   {stack, shape, batch, seq, tokens_per_s, step_ms, host_ms, peak_gib, peak_reserved_gib, ...}
// and, when LORAFORGE_PROFILE=1, a second line with the device time per kernel of one extra step.
// Usage: node dist/bench/train_gpu.js <case> [steps=10] [warmup=2]; cases are listed in CASES.
import '../src/index.js';
import { getBackend } from '../src/backend/registry.js';
import { CudaBackend } from '../src/backend/cuda/cuda-backend.js';
import { fromHost } from '../src/ops/index.js';
import { AdamW } from '../src/optim/index.js';
import { kernelsByKind } from './profile-summary.js';
import { getPeftModel } from '../src/peft/index.js';
import { scopeAsync } from '../src/tensor/scope.js';
import { enableGradientCheckpointing } from '../src/train/gradient-checkpointing.js';
import { randomModel } from './random-llama.js';
import { benchConfig } from './shapes.js';

interface Case {
  /** A shape of bench/shapes.json. */
  readonly shape: string;
  readonly batch: number;
  readonly seq: number;
  /** NF4 double-quantized base (QLoRA). */
  readonly nf4: boolean;
  readonly checkpointing: boolean;
  /** AdamW moments in pinned host memory (paged optimizer). */
  readonly paged: boolean;
  /**
   * LoRA targets: 'all' the seven projections (dense models); 'attention' q/k/v/o only; 'experts' q/k/v/o plus the
   * experts' fused weights through PEFT's target_parameters (mixture-of-experts models).
   */
  readonly targets?: 'all' | 'attention' | 'experts';
}

const CASES: Readonly<Record<string, Case>> = {
  tiny: { shape: 'tiny', batch: 2, seq: 128, nf4: false, checkpointing: false, paged: false },
  'tiny-qlora': { shape: 'tiny', batch: 2, seq: 128, nf4: true, checkpointing: true, paged: true },
  'llama-1b': { shape: 'llama-1b', batch: 4, seq: 2048, nf4: false, checkpointing: false, paged: false },
  'llama-8b': { shape: 'llama-8b', batch: 1, seq: 2048, nf4: false, checkpointing: false, paged: false },
  'llama-1b-qlora': { shape: 'llama-1b', batch: 4, seq: 2048, nf4: true, checkpointing: false, paged: false },
  'llama-8b-qlora': { shape: 'llama-8b', batch: 1, seq: 2048, nf4: true, checkpointing: false, paged: false },
  'llama-70b-qlora': { shape: 'llama-70b', batch: 1, seq: 2048, nf4: true, checkpointing: true, paged: true },
  'qwen3-8b': { shape: 'qwen3-8b', batch: 1, seq: 2048, nf4: false, checkpointing: false, paged: false },
  'qwen3-8b-8k': { shape: 'qwen3-8b', batch: 1, seq: 8192, nf4: false, checkpointing: false, paged: false },
  'gemma3-4b': { shape: 'gemma3-4b', batch: 1, seq: 2048, nf4: false, checkpointing: false, paged: false },
  'gemma3-4b-8k': { shape: 'gemma3-4b', batch: 1, seq: 8192, nf4: false, checkpointing: false, paged: false },
  // Mixture of experts (issue 14): bf16 LoRA on attention and experts, on attention only, and QLoRA (NF4
  // projections and per-expert NF4 experts) with LoRA on attention and experts.
  'gpt-oss-20b': { shape: 'gpt-oss-20b', batch: 1, seq: 2048, nf4: false, checkpointing: false, paged: false, targets: 'experts' },
  'gpt-oss-20b-attn': { shape: 'gpt-oss-20b', batch: 1, seq: 2048, nf4: false, checkpointing: false, paged: false, targets: 'attention' },
  'gpt-oss-20b-qlora': { shape: 'gpt-oss-20b', batch: 1, seq: 2048, nf4: true, checkpointing: true, paged: true, targets: 'experts' },
  'qwen3-30b-a3b': { shape: 'qwen3-30b-a3b', batch: 1, seq: 2048, nf4: false, checkpointing: false, paged: false, targets: 'experts' },
  'qwen3-30b-a3b-attn': { shape: 'qwen3-30b-a3b', batch: 1, seq: 2048, nf4: false, checkpointing: false, paged: false, targets: 'attention' },
  'qwen3-30b-a3b-qlora': { shape: 'qwen3-30b-a3b', batch: 1, seq: 2048, nf4: true, checkpointing: true, paged: true, targets: 'experts' },
};

const ATTENTION = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
const TARGETS = [...ATTENTION, 'gate_proj', 'up_proj', 'down_proj'];
const EXPERTS = ['mlp.experts.gate_up_proj', 'mlp.experts.down_proj'];
const GIB = 2 ** 30;

const name = process.argv[2] ?? 'tiny';
const spec = CASES[name];
if (!spec) throw new Error(`Unknown case "${name}"; cases: ${Object.keys(CASES).join(', ')}.`);
const steps = Number(process.argv[3] ?? 10);
const warmup = Number(process.argv[4] ?? 2);
const device = 'cuda';

const t0 = performance.now();
const config = benchConfig(spec.shape);
const model = await randomModel(config, { device, dtype: 'bfloat16', nf4: spec.nf4 });
const targets = spec.targets ?? 'all';
const peft = getPeftModel(model, {
  r: 16,
  loraAlpha: 16,
  loraDropout: 0,
  targetModules: targets === 'all' ? TARGETS : ATTENTION,
  targetParameters: targets === 'experts' ? EXPERTS : null,
});
peft.train();
if (spec.checkpointing) enableGradientCheckpointing(peft.model);
const params = peft.trainableParameters();
const optimizer = new AdamW(params, { lr: 1e-4, weightDecay: 0, paged: spec.paged });
const backend = getBackend(device);
if (!(backend instanceof CudaBackend)) throw new Error('train_gpu benchmarks the CUDA backend.');

const { batch: B, seq: T } = spec;
const ids = new Int32Array(B * T);
for (let i = 0; i < ids.length; i++) ids[i] = (Math.imul(i + 1, 2654435761) >>> 0) % config.vocabSize;
const inputIds = fromHost(ids, [B, T], 'int32', device).keep();
const labels = Array.from({ length: B }, (_, b) => Array.from(ids.subarray(b * T, (b + 1) * T)));
await backend.synchronize();
const buildSeconds = (performance.now() - t0) / 1000;

/** One training step; returns the milliseconds the host spent queueing it. */
async function step(): Promise<number> {
  const start = performance.now();
  await scopeAsync(async () => {
    const loss = peft.runLoss({ inputIds, labels });
    optimizer.prefetchState();
    await loss.backward();
    optimizer.step();
    optimizer.zeroGrad();
  });
  return performance.now() - start;
}

for (let i = 0; i < warmup; i++) await step();
await backend.synchronize();

const { driver, stream } = backend.runtime;
const begin = driver.eventCreate();
const end = driver.eventCreate();
let hostMs = 0;
const wall0 = performance.now();
driver.eventRecord(begin, stream);
for (let i = 0; i < steps; i++) hostMs += await step();
driver.eventRecord(end, stream);
await backend.synchronize();
const wallMs = performance.now() - wall0;
const deviceMs = driver.eventElapsedMs(begin, end);
const stats = backend.memoryStats();
const trainable = [...params.values()].reduce((s, p) => s + p.numel, 0);

console.log(
  JSON.stringify({
    stack: 'loraforge',
    shape: spec.shape,
    case: name,
    batch: B,
    seq: T,
    qlora: spec.nf4,
    gradient_checkpointing: spec.checkpointing,
    paged_optimizer: spec.paged,
    lora_targets: targets,
    trainable_params: trainable,
    steps,
    tokens_per_s: Math.round((B * T * steps) / (wallMs / 1000)),
    step_ms: +(wallMs / steps).toFixed(2),
    device_step_ms: +(deviceMs / steps).toFixed(2),
    host_ms: +(hostMs / steps).toFixed(2),
    peak_gib: +(stats.peak / GIB).toFixed(2),
    peak_reserved_gib: +(stats.peakReserved / GIB).toFixed(2),
    build_s: +buildSeconds.toFixed(1),
  }),
);

const profiler = backend.runtime.profiler;
if (profiler) {
  profiler.start();
  const stepBegin = performance.now();
  driver.eventRecord(begin, stream);
  await step();
  driver.eventRecord(end, stream);
  const entries = profiler.report();
  const profiledMs = driver.eventElapsedMs(begin, end);
  const kernelMs = entries.reduce((s, e) => s + e.ms, 0);
  const launches = entries.reduce((s, e) => s + e.calls, 0);
  console.log(
    JSON.stringify({
      stack: 'loraforge',
      case: name,
      profile_step_ms: +profiledMs.toFixed(2),
      profile_host_ms: +(performance.now() - stepBegin).toFixed(2),
      kernel_ms: +kernelMs.toFixed(2),
      launches,
      by_kind: kernelsByKind(entries),
      top: entries.slice(0, 40).map((e) => ({ name: e.name, calls: e.calls, ms: +e.ms.toFixed(3) })),
    }),
  );
}
