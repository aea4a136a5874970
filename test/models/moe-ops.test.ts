/**
 * The ops a mixture-of-experts layer is made of, each against the composition of existing ops it replaces:
 * the grouped GEMM (both weight layouts, with an expert that gets no rows), the row scatter-add, top-k routing,
 * clamp, and attention sinks in the fused and paged attention kernels.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ops from '../../src/ops/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertClose, seededValues } from '../helpers/numeric.js';

function leaf(shape: number[], seed: number): Tensor {
  const t = ops.tensor(seededValues(shape.reduce((a, b) => a * b, 1), seed), shape);
  t.requiresGrad = true;
  return t;
}

/** Backpropagates sum(y * weights) so every output element gets a distinct gradient. */
async function backwardWeighted(y: Tensor, seed: number): Promise<void> {
  const g = ops.tensor(seededValues(y.numel, seed), y.shape);
  await ops.sum(ops.mul(y, g)).backward();
}

for (const layout of ['out-in', 'in-out'] as const) {
  test(`groupedMatmul (${layout}) equals one matmul per group, forward and backward, an empty group's weight gradient zero`, async () => {
    const [k, n] = [5, 3];
    const sizes = [2, 0, 3, 1];
    const x = leaf([6, k], 1);
    const w = leaf(layout === 'out-in' ? [4, n, k] : [4, k, n], 2);
    await backwardWeighted(ops.groupedMatmul(x, w, sizes, layout), 3);
    const gx = await x.grad!.data();
    const gw = await w.grad!.data();
    const x2 = leaf([6, k], 1);
    const w2 = leaf(layout === 'out-in' ? [4, n, k] : [4, k, n], 2);
    let row = 0;
    const parts: Tensor[] = [];
    sizes.forEach((rows, e) => {
      if (rows > 0) {
        const we = ops.reshape(ops.narrow(w2, 0, e, 1), layout === 'out-in' ? [n, k] : [k, n]);
        const xe = ops.narrow(x2, 0, row, rows);
        parts.push(layout === 'out-in' ? ops.linear(xe, we) : ops.matmul(xe, we));
      }
      row += rows;
    });
    const reference = ops.cat(parts, 0);
    assertClose(await ops.groupedMatmul(x2, w2, sizes, layout).data(), await reference.data(), 1e-6, 'forward');
    await backwardWeighted(reference, 3);
    assertClose(gx, await x2.grad!.data(), 1e-6, 'dx');
    assertClose(gw, await w2.grad!.data(), 1e-6, 'dw');
    assert.deepEqual(Array.from(gw.subarray(n * k, 2 * n * k)), new Array(n * k).fill(0));
  });
}

test('groupedMatmul refuses group sizes that do not add up to the rows', () => {
  assert.throws(() => ops.groupedMatmul(ops.zeros([4, 2]), ops.zeros([2, 3, 2]), [1, 2], 'out-in'), {
    message: 'groupedMatmul: the group sizes [1, 2] must be whole numbers adding up to the 4 rows of x.',
  });
});

test('scatterAddRows adds every row into the row its index names, and its gradient gathers those rows', async () => {
  const src = leaf([4, 2], 4);
  const index = ops.tensor([2, 0, 2, 1], [4], { dtype: 'int32' });
  const out = ops.scatterAddRows(src, index, 3);
  const s = await src.data();
  assertClose(await out.data(), [s[2]!, s[3]!, s[6]!, s[7]!, s[0]! + s[4]!, s[1]! + s[5]!], 1e-7, 'sums');
  await backwardWeighted(out, 5);
  const g = seededValues(6, 5);
  assertClose(await src.grad!.data(), [g[4]!, g[5]!, g[0]!, g[1]!, g[4]!, g[5]!, g[2]!, g[3]!], 1e-7, 'gradient');
});

test('routeTopK picks each token\'s k best experts and groups the assignments by expert, tokens ascending', async () => {
  const scores = ops.tensor([0.1, 0.5, 0.4, 0.9, 0.0, 0.3, 0.2, 0.7, 0.6], [3, 3]);
  const r = ops.routeTopK(scores, 2);
  assert.deepEqual(await r.choice.tolist(), [1, 2, 3, 5, 7, 8]);
  assert.deepEqual(r.groupSizes, [1, 2, 3]);
  assert.deepEqual(await r.expert.tolist(), [0, 1, 1, 2, 2, 2]);
  assert.deepEqual(await r.token.tolist(), [1, 0, 2, 0, 1, 2]);
  assert.deepEqual(await r.slot.tolist(), [2, 0, 4, 1, 3, 5]);
});

test('clamp bounds values and passes the gradient only inside the bounds, bounds included', async () => {
  const x = ops.tensor([-3, -1, 0.5, 1, 4], [5]);
  x.requiresGrad = true;
  const y = ops.clamp(x, -1, 1);
  assert.deepEqual(await y.tolist(), [-1, -1, 0.5, 1, 1]);
  await ops.sum(y).backward();
  assert.deepEqual(await x.grad!.tolist(), [0, 1, 1, 1, 0]);
});

for (const window of [0, 3]) {
  test(`attention with sinks${window ? ' and a sliding window' : ''} equals the composed reference, forward and q/k/v gradients`, async () => {
    const [B, H, Hkv, T, D] = [2, 4, 2, 7, 8];
    const sinks = ops.tensor(seededValues(H, 9, 2), [H]);
    const run = async (fn: typeof ops.attention) => {
      const q = leaf([B, H, T, D], 6);
      const k = leaf([B, Hkv, T, D], 7);
      const v = leaf([B, Hkv, T, D], 8);
      const out = fn(q, k, v, 0.35, null, true, { sinks, window });
      const values = await out.data();
      await backwardWeighted(out, 10);
      return { values, dq: await q.grad!.data(), dk: await k.grad!.data(), dv: await v.grad!.data() };
    };
    const fused = await run(ops.attention);
    const reference = await run(ops.attentionReference);
    for (const key of ['values', 'dq', 'dk', 'dv'] as const) assertClose(fused[key], reference[key], 1e-5, key);
  });
}

test('attention refuses sinks that require a gradient, and sinks of the wrong length', () => {
  const q = ops.zeros([1, 2, 3, 4]);
  const kv = ops.zeros([1, 1, 3, 4]);
  const trainable = ops.zeros([2]);
  trainable.requiresGrad = true;
  assert.throws(() => ops.attention(q, kv, kv, 1, null, true, { sinks: trainable }), {
    message: 'attention sinks are frozen model weights here (their gradient is not computed); set requiresGrad = false on them.',
  });
  assert.throws(() => ops.attention(q, kv, kv, 1, null, true, { sinks: ops.zeros([3]) }), { message: 'attention sinks must be one logit per query head [2], got [3].' });
});
