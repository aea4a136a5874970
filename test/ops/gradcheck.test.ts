import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ops from '../../src/ops/index.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';
import { seededValues } from '../helpers/numeric.js';

await prepareTestDevice();

/**
 * Finite-difference check: for loss = sum(f(inputs) * w) with fixed random w, compares backward()'s
 * gradient of every input with central differences (eps 1e-2, float32 storage).
 */
async function gradcheck(name: string, shapes: number[][], f: (xs: Tensor[]) => Tensor, opts: { positive?: boolean; tol?: number } = {}): Promise<void> {
  const values = shapes.map((s, i) => {
    const v = seededValues(s.reduce((p, d) => p * d, 1), 17 + i * 31, 1);
    if (opts.positive) for (let j = 0; j < v.length; j++) v[j] = Math.abs(v[j]!) + 0.5;
    return v;
  });
  const make = (vals: Float32Array[], grad: boolean) => vals.map((v, i) => ops.tensor(v, shapes[i]!, { device: TEST_DEVICE, requiresGrad: grad }));
  const inputs = make(values, true);
  const out = f(inputs);
  const w = ops.tensor(seededValues(out.numel, 99), out.shape, { device: TEST_DEVICE });
  const loss = ops.sum(ops.mul(out, w));
  await loss.backward();
  const lossAt = async (vals: Float32Array[]) => noGrad(() => ops.sum(ops.mul(f(make(vals, false)), w))).item();
  const eps = 1e-2;
  for (let i = 0; i < inputs.length; i++) {
    const analytic = await inputs[i]!.grad!.data();
    for (let j = 0; j < values[i]!.length; j++) {
      const plus = values.map((v) => v.slice());
      const minus = values.map((v) => v.slice());
      plus[i]![j]! += eps;
      minus[i]![j]! -= eps;
      const numeric = ((await lossAt(plus)) - (await lossAt(minus))) / (2 * eps);
      const tol = (opts.tol ?? 2e-2) * Math.max(1, Math.abs(numeric));
      assert.ok(Math.abs(analytic[j]! - numeric) <= tol, `${name}: d/dinput${i}[${j}] analytic ${analytic[j]} vs numeric ${numeric}`);
    }
  }
}

test('add, sub, mul, div broadcast and sum their gradients back', async () => {
  await gradcheck('add', [[2, 3], [3]], ([a, b]) => ops.add(a!, b!));
  await gradcheck('sub', [[2, 1, 3], [4, 1]], ([a, b]) => ops.sub(a!, b!));
  await gradcheck('mul', [[2, 3], [2, 1]], ([a, b]) => ops.mul(a!, b!));
  await gradcheck('div', [[2, 3], [3]], ([a, b]) => ops.div(a!, b!), { positive: true });
});

test('unary ops match finite differences', async () => {
  await gradcheck('exp', [[5]], ([a]) => ops.exp(a!));
  await gradcheck('log', [[5]], ([a]) => ops.log(a!), { positive: true });
  await gradcheck('sqrt', [[5]], ([a]) => ops.sqrt(a!), { positive: true });
  await gradcheck('rsqrt', [[5]], ([a]) => ops.rsqrt(a!), { positive: true });
  await gradcheck('square', [[5]], ([a]) => ops.square(a!));
  await gradcheck('sigmoid', [[5]], ([a]) => ops.sigmoid(a!));
  await gradcheck('tanh', [[5]], ([a]) => ops.tanh(a!));
  await gradcheck('silu', [[6]], ([a]) => ops.silu(a!));
  await gradcheck('gelu', [[8]], ([a]) => ops.gelu(ops.mulScalar(a!, 3)));
  await gradcheck('geluTanh', [[8]], ([a]) => ops.geluTanh(ops.mulScalar(a!, 3)));
  await gradcheck('neg', [[3]], ([a]) => ops.neg(a!));
  await gradcheck('affine', [[3]], ([a]) => ops.affine(a!, -1.5, 0.25));
});

test('reductions: sum over dims with and without keepdim, mean', async () => {
  await gradcheck('sum dim', [[2, 3, 4]], ([a]) => ops.sum(a!, 1));
  await gradcheck('sum dims keepdim', [[2, 3, 4]], ([a]) => ops.sum(a!, [0, 2], true));
  await gradcheck('mean', [[3, 4]], ([a]) => ops.mean(a!, -1));
});

test('matmul: plain, batched, broadcast weight, transposed views', async () => {
  await gradcheck('matmul', [[3, 4], [4, 5]], ([a, b]) => ops.matmul(a!, b!));
  await gradcheck('bmm', [[2, 3, 4], [2, 4, 2]], ([a, b]) => ops.matmul(a!, b!));
  await gradcheck('broadcast', [[2, 3, 4], [4, 2]], ([a, b]) => ops.matmul(a!, b!));
  await gradcheck('transposed', [[4, 3], [5, 4]], ([a, b]) => ops.matmul(ops.transpose(a!), ops.transpose(b!)));
  await gradcheck('linear+bias', [[2, 3, 4], [5, 4], [5]], ([x, w, b]) => ops.linear(x!, w!, b!));
});

test('views and copies: reshape, permute, narrow, expand, cat, unsqueeze', async () => {
  await gradcheck('reshape', [[2, 6]], ([a]) => ops.reshape(a!, [3, 4]));
  await gradcheck('permute', [[2, 3, 4]], ([a]) => ops.contiguous(ops.permute(a!, [2, 0, 1])));
  await gradcheck('narrow', [[4, 3]], ([a]) => ops.narrow(a!, 0, 1, 2));
  await gradcheck('expand', [[1, 3]], ([a]) => ops.expand(a!, [4, 3]));
  await gradcheck('cat', [[2, 3], [1, 3]], ([a, b]) => ops.cat([a!, b!], 0));
  await gradcheck('unsqueeze', [[3, 2]], ([a]) => ops.mul(ops.unsqueeze(a!, 1), ops.unsqueeze(a!, 0)));
});

test('softmax, rmsNorm (input and weight), rope', async () => {
  await gradcheck('softmax', [[3, 5]], ([a]) => ops.softmax(a!));
  await gradcheck('rmsNorm', [[3, 8], [8]], ([x, w]) => ops.rmsNorm(x!, w!, 1e-5));
  const cos = ops.tensor(seededValues(3 * 4, 5), [3, 4], { device: TEST_DEVICE });
  const sin = ops.tensor(seededValues(3 * 4, 6), [3, 4], { device: TEST_DEVICE });
  await gradcheck('rope', [[2, 3, 2, 4]], ([x]) => ops.rope(x!, cos, sin));
  // partial rotary: tables [seq, 2] (shared) and [batch, seq, 2] (per row) rotate the first 2 of 6 per head.
  const pc = ops.tensor(seededValues(3 * 2, 7), [3, 2], { device: TEST_DEVICE });
  const ps = ops.tensor(seededValues(3 * 2, 8), [3, 2], { device: TEST_DEVICE });
  await gradcheck('partial rope', [[2, 3, 2, 6]], ([x]) => ops.rope(x!, pc, ps));
  const rc = ops.tensor(seededValues(2 * 3 * 4, 9), [2, 3, 4], { device: TEST_DEVICE });
  const rs = ops.tensor(seededValues(2 * 3 * 4, 10), [2, 3, 4], { device: TEST_DEVICE });
  await gradcheck('partial rope per row', [[2, 3, 1, 6]], ([x]) => ops.rope(x!, rc, rs));
});

test('embedding scatters its gradient into the table rows', async () => {
  const ids = ops.tensor([2, 0, 2, 1], [2, 2], { dtype: 'int32', device: TEST_DEVICE });
  await gradcheck('embedding', [[4, 3]], ([t]) => ops.embedding(ids, t!));
});

test('crossEntropy ignores -100 and averages over targets', async () => {
  const labels = ops.tensor([1, -100, 4], [3], { dtype: 'int32', device: TEST_DEVICE });
  await gradcheck('crossEntropy', [[3, 5]], ([x]) => ops.crossEntropy(x!, labels));
});

test('grouped-query causal attention matches finite differences', async () => {
  await gradcheck('attention', [[1, 4, 3, 2], [1, 2, 3, 2], [1, 2, 3, 2]], ([q, k, v]) => ops.attention(q!, k!, v!, 0.7), { tol: 3e-2 });
});

test('casting to bfloat16 passes the gradient back in float32', async () => {
  await gradcheck('cast', [[4]], ([a]) => ops.to(ops.mul(a!, a!), { dtype: 'bfloat16' }), { tol: 5e-2 });
});
