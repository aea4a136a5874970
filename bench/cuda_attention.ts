// Fused attention against the composed reference (GEMMs + masks + softmax, [B, H, T, S] scores held) on the
// CUDA backend: forward and forward+backward time, TFLOP/s and peak memory at two training shapes (bf16,
// causal, grouped-query heads, q/k/v in the model's transposed [B, T, heads, D] layout), plus the largest
// error of the fused output and gradients against the reference at those shapes.
// FLOPs are counted as FlashAttention reports them: causal forward 2 * B * H * T^2 * D (two GEMMs, half the
// square), backward 2.5x the forward.
// Usage: node dist/bench/cuda_attention.js [iterations=10]
//        node dist/bench/cuda_attention.js <iterations> --fused B,H,Hkv,T,D [...]: the fused op alone at those shapes
//        (no reference: it would hold [B, H, T, T] scores), one JSON line per shape. LORAFORGE_CUDA_SHARED_OPTIN
//        picks the kernel variants of a device with less shared memory, so variants compare in one command.
import { registerBackend } from '../src/backend/registry.js';
import { CudaBackend } from '../src/backend/cuda/index.js';
import * as ops from '../src/ops/index.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { noGrad } from '../src/tensor/grad-mode.js';
import { scope, scopeAsync } from '../src/tensor/scope.js';

const iterations = Number(process.argv[2] ?? 10);
const be = new CudaBackend('cuda', 0);
registerBackend(be);
const { driver, stream } = be.runtime;
const GiB = 2 ** 30;

interface Shape {
  B: number;
  H: number;
  Hkv: number;
  T: number;
  D: number;
}

/** Normal-ish values from a xorshift generator (sum of four uniforms), never zeros. */
function randomValues(n: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  for (let i = 0; i < n; i++) out[i] = (next() + next() + next() + next() - 2) * scale;
  return out;
}

/** Median milliseconds of `body` over `iterations` runs, timed with events on the stream, after two warm-ups. */
async function medianMs(body: () => void): Promise<number> {
  for (let i = 0; i < 2; i++) body();
  await be.synchronize();
  const events = Array.from({ length: iterations + 1 }, () => driver.eventCreate());
  driver.eventRecord(events[0]!, stream);
  for (let i = 0; i < iterations; i++) {
    body();
    driver.eventRecord(events[i + 1]!, stream);
  }
  await be.synchronize();
  const ms = Array.from({ length: iterations }, (_, i) => driver.eventElapsedMs(events[i]!, events[i + 1]!)).sort((x, y) => x - y);
  for (const e of events) driver.eventDestroy(e);
  return ms[Math.floor(iterations / 2)]!;
}

/** Peak bytes allocated by one run of `body` beyond what was live before it. */
async function peakBytes(body: () => void): Promise<number> {
  await be.synchronize();
  const before = be.memoryStats().inUse;
  be.resetPeakMemory();
  body();
  await be.synchronize();
  return be.memoryStats().peak - before;
}

function relativeError(actual: Float32Array, expected: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < actual.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return diff / scale;
}

type Attend = typeof ops.attention;

async function benchShape(shape: Shape): Promise<string[]> {
  const { B, H, Hkv, T, D } = shape;
  const scale = 1 / Math.sqrt(D);
  const leaf = (heads: number, seed: number): Tensor =>
    ops.tensor(randomValues(B * T * heads * D, seed, 1), [B, T, heads, D], { device: 'cuda', dtype: 'bfloat16', requiresGrad: true }).keep();
  const [qRaw, kRaw, vRaw] = [leaf(H, 1), leaf(Hkv, 2), leaf(Hkv, 3)];
  const leaves = [qRaw, kRaw, vRaw];
  const gradOut = ops.tensor(randomValues(B * H * T * D, 4, 0.1), [B, H, T, D], { device: 'cuda', dtype: 'bfloat16' }).keep();
  const views = (): [Tensor, Tensor, Tensor] => [ops.transpose(qRaw, 1, 2), ops.transpose(kRaw, 1, 2), ops.transpose(vRaw, 1, 2)];
  const clearGrads = (): void => {
    for (const t of leaves) {
      t.grad?.dispose();
      t.grad = null;
    }
  };
  const forward = (attend: Attend) => (): void =>
    scope(() => {
      const [q, k, v] = views();
      noGrad(() => attend(q, k, v, scale));
    });
  const training = (attend: Attend) => (): void => {
    scope(() => {
      const [q, k, v] = views();
      void attend(q, k, v, scale).backward(gradOut);
    });
    clearGrads();
  };

  const flopsForward = 2 * B * H * T * T * D;
  const rows: string[] = [];
  const label = `B=${B} H=${H} Hkv=${Hkv} T=${T} D=${D} bf16`;
  const results: Record<string, { ms: number; peak: number; flops: number }> = {};
  for (const [name, attend] of [['fused', ops.attention], ['reference', ops.attentionReference]] as const) {
    results[`${name} fwd`] = { ms: await medianMs(forward(attend)), peak: await peakBytes(forward(attend)), flops: flopsForward };
    results[`${name} fwd+bwd`] = { ms: await medianMs(training(attend)), peak: await peakBytes(training(attend)), flops: 3.5 * flopsForward };
    clearGrads();
  }
  for (const [name, r] of Object.entries(results)) {
    rows.push(`${label} | ${name.padEnd(17)} | ${r.ms.toFixed(3).padStart(8)} ms | ${(r.flops / (r.ms * 1e-3) / 1e12).toFixed(1).padStart(6)} TFLOP/s | peak +${(r.peak / GiB).toFixed(3)} GiB`);
  }
  for (const mode of ['fwd', 'fwd+bwd']) {
    rows.push(`${label} | ${mode}: fused is ${(results[`reference ${mode}`]!.ms / results[`fused ${mode}`]!.ms).toFixed(2)}x faster, ${(results[`reference ${mode}`]!.peak / Math.max(1, results[`fused ${mode}`]!.peak)).toFixed(1)}x less memory`);
  }

  // Accuracy at this shape: fused and reference (both bf16) against each other.
  const outputs: Float32Array[][] = [];
  for (const attend of [ops.attention, ops.attentionReference]) {
    await scopeAsync(async () => {
      const [q, k, v] = views();
      const out = attend(q, k, v, scale);
      await out.backward(gradOut);
      outputs.push([await out.data(), ...(await Promise.all(leaves.map((t) => t.grad!.data())))]);
    });
    clearGrads();
  }
  const errors = ['out', 'dq', 'dk', 'dv'].map((n, i) => `${n} ${relativeError(outputs[0]![i]!, outputs[1]![i]!).toExponential(2)}`);
  rows.push(`${label} | max |fused - reference| / max |reference|: ${errors.join(', ')}`);
  for (const t of [...leaves, gradOut]) t.dispose();
  return rows;
}

/** Fused forward and forward+backward alone at one shape: a JSON line. */
async function benchFused(shape: Shape): Promise<string> {
  const { B, H, Hkv, T, D } = shape;
  const leaf = (heads: number, seed: number): Tensor =>
    ops.tensor(randomValues(B * T * heads * D, seed, 1), [B, T, heads, D], { device: 'cuda', dtype: 'bfloat16', requiresGrad: true }).keep();
  const leaves = [leaf(H, 1), leaf(Hkv, 2), leaf(Hkv, 3)] as const;
  const gradOut = ops.tensor(randomValues(B * H * T * D, 4, 0.1), [B, H, T, D], { device: 'cuda', dtype: 'bfloat16' }).keep();
  const views = (): [Tensor, Tensor, Tensor] => [ops.transpose(leaves[0], 1, 2), ops.transpose(leaves[1], 1, 2), ops.transpose(leaves[2], 1, 2)];
  const fwdMs = await medianMs(() => scope(() => void noGrad(() => ops.attention(...views(), 1 / Math.sqrt(D)))));
  const trainMs = await medianMs(() => {
    scope(() => void ops.attention(...views(), 1 / Math.sqrt(D)).backward(gradOut));
    for (const t of leaves) {
      t.grad?.dispose();
      t.grad = null;
    }
  });
  for (const t of [...leaves, gradOut]) t.dispose();
  const flops = 2 * B * H * T * T * D;
  const tflops = (f: number, ms: number): number => Math.round((f / (ms * 1e-3) / 1e12) * 10) / 10;
  const sharedOptin = process.env['LORAFORGE_CUDA_SHARED_OPTIN'] ?? null;
  return JSON.stringify({
    bench: 'cuda_attention', device: be.info.name, ...shape, dtype: 'bfloat16', causal: true, sharedOptin,
    forward_ms: Math.round(fwdMs * 1000) / 1000, backward_ms: Math.round((trainMs - fwdMs) * 1000) / 1000,
    forward_tflops: tflops(flops, fwdMs), backward_tflops: tflops(2.5 * flops, trainMs - fwdMs),
  });
}

const fusedAt = process.argv.indexOf('--fused');
if (fusedAt > 0) {
  for (const spec of process.argv.slice(fusedAt + 1)) {
    const [B, H, Hkv, T, D] = spec.split(',').map(Number) as [number, number, number, number, number];
    console.log(await benchFused({ B, H, Hkv, T, D }));
  }
} else {
  console.log(`cuda_attention: ${be.info.name}, ${iterations} timed runs per row (median)`);
  for (const shape of [{ B: 4, H: 32, Hkv: 8, T: 2048, D: 64 }, { B: 1, H: 32, Hkv: 8, T: 2048, D: 128 }]) {
    for (const row of await benchShape(shape)) console.log(row);
  }
}
