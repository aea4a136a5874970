/**
 * The fused attention op (one kernel forward, one backward) against the composed reference (GEMMs, masks,
 * softmax) on the device that LORAFORGE_TEST_DEVICE selects: outputs and the gradients of q, k and v.
 * float32 agrees within 1e-5 of the result's scale; bfloat16 and float16 are compared with the float32
 * reference on the same rounded inputs, within a few roundings of the storage type. The sliding window, the
 * logit soft-cap and attention sinks (AttentionExtras) are covered the same way, alone and together, across the paths each backend
 * has (CUDA: tensor cores for bf16/f16 at head dim 64, 128 and 256, SIMT otherwise; LORAFORGE_CUDA_SHARED_OPTIN
 * picks the variants a device with less shared memory runs, see bench/results/test-cuda-*.txt). Packed rows
 * (AttentionExtras.segments: block-diagonal causal attention, one kernel call per sequence) are compared with the
 * composition under a block-diagonal mask, and each sequence with itself run alone.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ops from '../../src/ops/index.js';
import { bf16ArrayToF32, f16ArrayToF32, f32ArrayToBf16, f32ArrayToF16, type DType } from '../../src/tensor/dtype.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';
import { assertClose, maxAbsDiff, seededValues } from '../helpers/numeric.js';

await prepareTestDevice();

interface Case {
  readonly name: string;
  readonly B: number;
  readonly H: number;
  readonly Hkv: number;
  readonly T: number;
  readonly S: number;
  readonly D: number;
  readonly causal?: boolean;
  /** q, k, v are [B, T, heads, D] tensors transposed to [B, heads, T, D], as the model makes them. */
  readonly transposed?: boolean;
  /** k and v are the first S positions of a [B, Hkv, capacity, D] cache. */
  readonly capacity?: number;
  /** Left padding per batch row: that many leading keys are hidden by the key mask. */
  readonly padding?: readonly number[];
  /** Sliding window and logit soft-cap (ops.AttentionExtras). */
  readonly window?: number;
  readonly softcap?: number;
  /** Attention sinks (gpt-oss): one seeded logit per query head, some larger than every score of their rows. */
  readonly sinks?: boolean;
  /** Packed rows: per batch row, the lengths of its sequences (ops.AttentionExtras.segments). */
  readonly segments?: readonly (readonly number[])[];
}

const CASES: readonly Case[] = [
  { name: 'causal multi-head', B: 2, H: 2, Hkv: 2, T: 19, S: 19, D: 16 },
  { name: 'grouped-query 4:1, head dim 64, several tiles, model layout', B: 1, H: 4, Hkv: 1, T: 131, S: 131, D: 64, transposed: true },
  { name: 'grouped-query 2:1, head dim 128, model layout', B: 2, H: 4, Hkv: 2, T: 77, S: 77, D: 128, transposed: true },
  { name: 'grouped-query 4:1, head dim 128, three key tiles of 128 with a partial last one', B: 1, H: 8, Hkv: 2, T: 300, S: 300, D: 128, transposed: true },
  { name: 'left-padding key mask with fully hidden queries, head dim 128, across key tiles', B: 2, H: 4, Hkv: 2, T: 150, S: 150, D: 128, padding: [9, 0] },
  { name: 'left-padding key mask with fully hidden queries', B: 2, H: 4, Hkv: 2, T: 70, S: 70, D: 64, padding: [5, 0] },
  { name: 'queries at the end of a KV-cache prefix (seqQ < seqK)', B: 1, H: 4, Hkv: 2, T: 5, S: 83, D: 64, transposed: true, capacity: 100 },
  { name: 'one decoding step against a cache, head dim 128', B: 1, H: 4, Hkv: 1, T: 1, S: 40, D: 128, capacity: 64 },
  { name: 'non-causal with seqQ != seqK', B: 1, H: 2, Hkv: 1, T: 33, S: 47, D: 16, causal: false },
  { name: 'head dim 256, one partial tile, model layout', B: 1, H: 2, Hkv: 1, T: 40, S: 40, D: 256, transposed: true },
  // Sliding window and soft-cap. Windows that are not multiples of any tile, over several query blocks and tiles.
  { name: 'window 37 smaller than the sequence, head dim 64, model layout', B: 1, H: 2, Hkv: 2, T: 203, S: 203, D: 64, transposed: true, window: 37 },
  { name: 'window 100 larger than the sequence', B: 2, H: 2, Hkv: 1, T: 45, S: 45, D: 16, window: 100 },
  { name: 'window 2: each query sees its own key and the one before', B: 1, H: 2, Hkv: 1, T: 19, S: 19, D: 16, window: 2 },
  { name: 'softcap 1.5 alone, head dim 64', B: 2, H: 2, Hkv: 2, T: 70, S: 70, D: 64, softcap: 1.5 },
  { name: 'window 20 with softcap 2, grouped-query 4:1, head dim 128, model layout', B: 1, H: 4, Hkv: 1, T: 150, S: 150, D: 128, transposed: true, window: 20, softcap: 2 },
  { name: 'window 90 with softcap 1, grouped-query 2:1, head dim 64, across query blocks', B: 1, H: 4, Hkv: 2, T: 300, S: 300, D: 64, window: 90, softcap: 1 },
  { name: 'window 8 with a left-padding key mask and fully hidden queries', B: 2, H: 4, Hkv: 2, T: 70, S: 70, D: 64, padding: [5, 0], window: 8, softcap: 1.5 },
  { name: 'window 30 with softcap 2, queries at the end of a KV-cache prefix (seqQ < seqK)', B: 1, H: 4, Hkv: 2, T: 5, S: 83, D: 64, transposed: true, capacity: 100, window: 30, softcap: 2 },
  { name: 'window 70, seqQ < seqK across several key tiles, head dim 128', B: 1, H: 2, Hkv: 1, T: 66, S: 260, D: 128, window: 70 },
  { name: 'window 12 with softcap 2, non-causal with seqQ != seqK', B: 1, H: 2, Hkv: 1, T: 33, S: 47, D: 16, causal: false, window: 12, softcap: 2 },
  { name: 'window 25 with softcap 1, head dim 256', B: 1, H: 2, Hkv: 1, T: 60, S: 60, D: 256, transposed: true, window: 25, softcap: 1 },
  // From 256 queries on, head dim 64 and 128 without a cap take CUDA's forward with two m-tiles per warp (128-query tiles).
  { name: 'two m-tiles per warp: grouped-query 4:1, head dim 64, a partial last query tile, model layout', B: 1, H: 4, Hkv: 1, T: 333, S: 333, D: 64, transposed: true },
  { name: 'two m-tiles per warp: window 50 with a left-padding key mask, head dim 128', B: 2, H: 2, Hkv: 1, T: 260, S: 260, D: 128, padding: [7, 0], window: 50 },
  { name: 'two m-tiles per warp: seqQ < seqK across key tiles, head dim 128', B: 1, H: 2, Hkv: 1, T: 257, S: 400, D: 128, transposed: true },
  { name: 'two m-tiles per warp: non-causal with seqQ != seqK, head dim 64', B: 1, H: 2, Hkv: 2, T: 256, S: 300, D: 64, causal: false },
  // Head dim 256 (Gemma 2/3): its own tensor-core tiling on CUDA (8-warp backward splitting the dimensions).
  { name: 'grouped-query 4:1, head dim 256, three tiles with a partial last one, model layout', B: 1, H: 4, Hkv: 1, T: 150, S: 150, D: 256, transposed: true },
  { name: 'left-padding key mask with fully hidden queries, head dim 256', B: 2, H: 2, Hkv: 1, T: 70, S: 70, D: 256, padding: [5, 0] },
  { name: 'queries at the end of a KV-cache prefix (seqQ < seqK), head dim 256', B: 1, H: 4, Hkv: 2, T: 5, S: 83, D: 256, transposed: true, capacity: 100 },
  { name: 'window 70 with softcap 2, seqQ < seqK across several key tiles, head dim 256', B: 1, H: 2, Hkv: 1, T: 66, S: 200, D: 256, window: 70, softcap: 2 },
  { name: 'non-causal with seqQ != seqK, head dim 256', B: 1, H: 2, Hkv: 1, T: 33, S: 47, D: 256, causal: false },
  // Attention sinks (gpt-oss: head dim 64, grouped-query 8:1, sliding window 128 on alternate layers) on every
  // CUDA path: SIMT (float32, head dim 16), one and two m-tiles per warp, head dim 128 and 256.
  { name: 'sinks, causal multi-head, head dim 16', B: 2, H: 2, Hkv: 2, T: 19, S: 19, D: 16, sinks: true },
  { name: 'sinks, grouped-query 8:1, head dim 64, window 128, model layout', B: 1, H: 8, Hkv: 1, T: 200, S: 200, D: 64, transposed: true, window: 128, sinks: true },
  { name: 'sinks, two m-tiles per warp, grouped-query 4:1, head dim 64, left-padding with fully hidden queries', B: 2, H: 4, Hkv: 1, T: 300, S: 300, D: 64, padding: [6, 0], sinks: true },
  { name: 'sinks, queries at the end of a KV-cache prefix (seqQ < seqK), head dim 64', B: 1, H: 4, Hkv: 2, T: 5, S: 83, D: 64, transposed: true, capacity: 100, sinks: true },
  { name: 'sinks with softcap 2 and window 30, head dim 128', B: 1, H: 2, Hkv: 1, T: 150, S: 150, D: 128, window: 30, softcap: 2, sinks: true },
  { name: 'sinks, head dim 256, non-causal with seqQ != seqK', B: 1, H: 2, Hkv: 1, T: 33, S: 47, D: 256, causal: false, sinks: true },
  // Packed rows: block-diagonal causal attention, one kernel call per sequence over views of the operands.
  { name: 'packed rows of 3 and 1 sequences, grouped-query 2:1, head dim 64, model layout', B: 2, H: 4, Hkv: 2, T: 150, S: 150, D: 64, transposed: true, segments: [[40, 71, 39], [150]] },
  { name: 'packed row with window 20 and softcap 2 inside each sequence, head dim 128, model layout', B: 1, H: 4, Hkv: 1, T: 150, S: 150, D: 128, transposed: true, window: 20, softcap: 2, segments: [[33, 100, 1, 16]] },
  { name: 'packed rows with a key mask hiding a whole sequence, head dim 64', B: 2, H: 4, Hkv: 2, T: 70, S: 70, D: 64, padding: [5, 0], segments: [[5, 30, 35], [69, 1]] },
  { name: 'packed row of sequences shorter than a tile, head dim 16', B: 1, H: 2, Hkv: 1, T: 19, S: 19, D: 16, segments: [[3, 7, 2, 7]] },
  { name: 'packed row, head dim 256, model layout', B: 1, H: 4, Hkv: 2, T: 90, S: 90, D: 256, transposed: true, segments: [[64, 26]] },
];

/** Values exactly representable in `dtype`, so both sides of a comparison see the same inputs. */
function representable(values: Float32Array, dtype: DType): Float32Array {
  if (dtype === 'bfloat16') return bf16ArrayToF32(f32ArrayToBf16(values));
  if (dtype === 'float16') return f16ArrayToF32(f32ArrayToF16(values));
  return values;
}

interface Result {
  out: Float32Array;
  /** Gradients of the leaves q, k, v (in the leaves' own shapes). */
  grads: Float32Array[];
}

/** Runs one attention (fused or reference) in `dtype` and backpropagates sum(out * w). */
async function run(c: Case, dtype: DType, fused: boolean): Promise<Result> {
  const kvRows = c.capacity ?? c.S;
  const leafShapes = c.transposed
    ? [[c.B, c.T, c.H, c.D], [c.B, kvRows, c.Hkv, c.D], [c.B, kvRows, c.Hkv, c.D]]
    : [[c.B, c.H, c.T, c.D], [c.B, c.Hkv, kvRows, c.D], [c.B, c.Hkv, kvRows, c.D]];
  const leaves = leafShapes.map((shape, i) => {
    const n = shape.reduce((p, d) => p * d, 1);
    return ops.tensor(representable(seededValues(n, 11 + 7 * i, 1.5), dtype), shape, { device: TEST_DEVICE, dtype, requiresGrad: true });
  });
  let [q, k, v] = leaves as [Tensor, Tensor, Tensor];
  if (c.transposed) [q, k, v] = [ops.transpose(q, 1, 2), ops.transpose(k, 1, 2), ops.transpose(v, 1, 2)];
  if (c.capacity !== undefined) [k, v] = [ops.narrow(k, 2, 0, c.S), ops.narrow(v, 2, 0, c.S)];
  const mask = c.padding
    ? ops.tensor(Float32Array.from({ length: c.B * c.S }, (_, e) => (e % c.S < c.padding![Math.floor(e / c.S)]! ? -Infinity : 0)), [c.B, c.S], { device: TEST_DEVICE })
    : null;
  const attend = fused ? ops.attention : ops.attentionReference;
  const sinks = c.sinks ? ops.tensor(seededValues(c.H, 29, 3), [c.H], { device: TEST_DEVICE }) : null;
  const out = attend(q, k, v, 1 / Math.sqrt(c.D), mask, c.causal ?? true, { window: c.window, softcap: c.softcap, sinks, segments: c.segments ?? null });
  assert.deepEqual(out.shape, [c.B, c.H, c.T, c.D]);
  const w = ops.tensor(representable(seededValues(out.numel, 5), dtype), out.shape, { device: TEST_DEVICE, dtype });
  await ops.sum(ops.mul(out, w)).backward();
  return { out: await out.data(), grads: await Promise.all(leaves.map((t) => t.grad!.data())) };
}

/** max |actual - expected| <= tol * max |expected|: errors relative to the result's scale. */
function assertRelative(actual: Float32Array, expected: Float32Array, tol: number, what: string): void {
  const { diff, scale } = maxAbsDiff(actual, expected);
  assert.ok(diff <= tol * scale, `${what}: max abs diff ${diff} exceeds ${tol} x ${scale}`);
}

const NAMES = ['out', 'dq', 'dk', 'dv'] as const;

for (const c of CASES) {
  test(`float32 ${c.name}: fused output and q, k, v gradients match the composition within 1e-5`, async () => {
    const fused = await run(c, 'float32', true);
    const ref = await run(c, 'float32', false);
    [fused.out, ...fused.grads].forEach((a, i) => assertClose(a, [ref.out, ...ref.grads][i]!, 1e-5, `${c.name} ${NAMES[i]}`));
  });

  test(`bfloat16 ${c.name}: fused output and gradients match the float32 composition within bf16 tolerance`, async () => {
    const fused = await run(c, 'bfloat16', true);
    const ref = await run(c, 'float32', false);
    [fused.out, ...fused.grads].forEach((a, i) => assertRelative(a, [ref.out, ...ref.grads][i]!, 2e-2, `${c.name} ${NAMES[i]}`));
  });
}

const named = (name: string): Case => CASES.find((x) => x.name === name)!;
for (const c of [named('grouped-query 4:1, head dim 64, several tiles, model layout'), named('queries at the end of a KV-cache prefix (seqQ < seqK)'), ...CASES.filter((x) => x.window !== undefined && x.softcap !== undefined && x.D !== 16)]) {
  test(`float16 ${c.name}: fused output and gradients match the float32 composition within f16 tolerance`, async () => {
    const fused = await run(c, 'float16', true);
    const ref = await run(c, 'float32', false);
    [fused.out, ...fused.grads].forEach((a, i) => assertRelative(a, [ref.out, ...ref.grads][i]!, 5e-3, `${c.name} ${NAMES[i]}`));
  });
}

test('a query that sees only hidden keys gets zeros and passes no gradient', async () => {
  const c = named('left-padding key mask with fully hidden queries');
  const { out, grads } = await run(c, 'float32', true);
  const row = c.H * c.T * c.D;
  // Batch row 0 hides its first 5 keys, so its queries 0..4 see nothing.
  for (let h = 0; h < c.H; h++) for (let i = 0; i < 5; i++) for (let d = 0; d < c.D; d++) assert.equal(out[(h * c.T + i) * c.D + d], 0);
  for (let h = 0; h < c.H; h++) for (let i = 0; i < 5; i++) for (let d = 0; d < c.D; d++) assert.equal(grads[0]![(h * c.T + i) * c.D + d], 0);
  assert.ok(out.subarray(row).some((x) => x !== 0));
});

test('the output is a [B, H, T, D] view of [B, T, H, D] memory, so the transpose back to tokens is free', () => {
  const q = ops.zeros([2, 3, 4, 16], { device: TEST_DEVICE });
  const out = ops.attention(q, q, q, 0.25);
  assert.ok(ops.transpose(out, 1, 2).isContiguous());
});

test('integer operands are refused in ops, before any backend or composed path sees them', () => {
  const q = ops.zeros([1, 2, 3, 16], { device: TEST_DEVICE });
  const ids = ops.zeros([1, 2, 3, 16], { device: TEST_DEVICE, dtype: 'int32' });
  assert.throws(() => ops.attention(q, ids, q, 0.25), /^Error: attention needs float tensors, got int32\.$/);
  assert.throws(() => ops.attentionReference(ids, q, q, 0.25), /attention needs float tensors, got int32/);
});

test('a mask that is not a [B, S] key mask is refused with the expected shape named', () => {
  const q = ops.zeros([1, 2, 3, 16], { device: TEST_DEVICE });
  assert.throws(() => ops.attention(q, q, q, 0.25, ops.zeros([1, 3, 3], { device: TEST_DEVICE })), /key mask \[1, 3\]/);
});

test('window 1 makes each output row its own value row, fused and composed alike', async () => {
  const v = ops.tensor(seededValues(2 * 7 * 16, 3), [1, 2, 7, 16], { device: TEST_DEVICE });
  const q = ops.tensor(seededValues(2 * 7 * 16, 4), [1, 2, 7, 16], { device: TEST_DEVICE });
  for (const attend of [ops.attention, ops.attentionReference]) {
    assertClose(await attend(q, q, v, 0.25, null, true, { window: 1 }).data(), await v.data(), 1e-6, attend.name);
  }
});

test('softcap follows its definition: softmax over softcap * tanh(scale * q.k / softcap), then the window', async () => {
  // One query (the last of 4 positions) over 4 keys, head dim 2, window 3: key 0 is out of it.
  const qv = [1.5, -2], kv = [2, 1, -1, 3, 0.5, -2, 3, 3], vv = [1, 2, 3, 4, 5, 6, 7, 8];
  const [scale, softcap] = [0.9, 1.25];
  const logits = [1, 2, 3].map((j) => softcap * Math.tanh((scale * (qv[0]! * kv[2 * j]! + qv[1]! * kv[2 * j + 1]!)) / softcap));
  const e = logits.map((x) => Math.exp(x - Math.max(...logits)));
  const z = e.reduce((a, b) => a + b, 0);
  const want = [0, 1].map((d) => e.reduce((acc, w, n) => acc + (w / z) * vv[2 * (n + 1) + d]!, 0));
  const q = ops.tensor(Float32Array.from(qv), [1, 1, 1, 2], { device: TEST_DEVICE });
  const k = ops.tensor(Float32Array.from(kv), [1, 1, 4, 2], { device: TEST_DEVICE });
  const v = ops.tensor(Float32Array.from(vv), [1, 1, 4, 2], { device: TEST_DEVICE });
  for (const attend of [ops.attention, ops.attentionReference]) {
    assertClose(await attend(q, k, v, scale, null, true, { window: 3, softcap }).data(), want, 1e-6, attend.name);
  }
});

test('a window or softcap that is negative, fractional (window), infinite or NaN is refused in one sentence', () => {
  const q = ops.zeros([1, 2, 3, 16], { device: TEST_DEVICE });
  for (const extra of [{ window: -1 }, { window: 2.5 }, { window: Number.NaN }, { softcap: -0.5 }, { softcap: Number.POSITIVE_INFINITY }]) {
    for (const attend of [ops.attention, ops.attentionReference]) {
      assert.throws(() => attend(q, q, q, 0.25, null, true, extra), /window must be a whole number >= 0 and its softcap a finite number >= 0/);
    }
  }
});

test('each sequence of a packed row gets what it gets alone, its gradients included', async () => {
  const [H, D, lengths] = [4, 64, [23, 41, 17]];
  const T = lengths.reduce((a, b) => a + b, 0);
  const leaves = [0, 1, 2].map((i) => ops.tensor(seededValues(T * H * D, 31 + i, 1.5), [1, T, H, D], { device: TEST_DEVICE, requiresGrad: true }));
  const w = seededValues(T * H * D, 9);
  const heads = (t: Tensor) => ops.transpose(t, 1, 2);
  const packed = ops.attention(heads(leaves[0]!), heads(leaves[1]!), heads(leaves[2]!), 0.125, null, true, { segments: [lengths] });
  await ops.sum(ops.mul(ops.transpose(packed, 1, 2), ops.tensor(w, [1, T, H, D], { device: TEST_DEVICE }))).backward();
  const packedOut = await ops.contiguous(ops.transpose(packed, 1, 2)).data();
  const packedGrads = await Promise.all(leaves.map((t) => t.grad!.data()));
  let start = 0;
  for (const len of lengths) {
    const alone = await Promise.all(leaves.map(async (t) => ops.tensor((await t.data()).slice(start * H * D, (start + len) * H * D), [1, len, H, D], { device: TEST_DEVICE, requiresGrad: true })));
    const out = ops.attention(heads(alone[0]!), heads(alone[1]!), heads(alone[2]!), 0.125);
    await ops.sum(ops.mul(ops.transpose(out, 1, 2), ops.tensor(w.slice(start * H * D, (start + len) * H * D), [1, len, H, D], { device: TEST_DEVICE }))).backward();
    const span = (a: Float32Array) => a.subarray(start * H * D, (start + len) * H * D);
    assertClose(span(packedOut), await ops.contiguous(ops.transpose(out, 1, 2)).data(), 1e-6, `sequence at ${start} out`);
    for (let i = 0; i < 3; i++) assertClose(span(packedGrads[i]!), await alone[i]!.grad!.data(), 1e-6, `sequence at ${start} ${NAMES[i + 1]}`);
    start += len;
  }
});

test('attention segments that do not tile the row, or a non-causal or cached call with them, are refused in one sentence', () => {
  const q = ops.zeros([1, 2, 6, 16], { device: TEST_DEVICE });
  const k = ops.zeros([1, 2, 8, 16], { device: TEST_DEVICE });
  for (const attend of [ops.attention, ops.attentionReference]) {
    assert.throws(() => attend(q, q, q, 0.25, null, true, { segments: [[2, 3]] }), /segments of row 0 cover 5 positions, not the row's 6/);
    assert.throws(() => attend(q, q, q, 0.25, null, true, { segments: [[3, 3], [6]] }), /segments list 2 rows for a batch of 1/);
    assert.throws(() => attend(q, q, q, 0.25, null, true, { segments: [[0, 6]] }), /whole numbers >= 1; row 0 has 0/);
    assert.throws(() => attend(q, q, q, 0.25, null, false, { segments: [[6]] }), /need causal attention with T = S/);
    assert.throws(() => attend(q, k, k, 0.25, null, true, { segments: [[8]] }), /need causal attention with T = S/);
  }
});
