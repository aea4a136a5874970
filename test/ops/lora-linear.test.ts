import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ops from '../../src/ops/index.js';
import type { DType } from '../../src/tensor/dtype.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';
import { assertClose, seededValues } from '../helpers/numeric.js';

await prepareTestDevice();

// The fused LoRA linear against its reference composition: linear(x, W) + scaling * linear(linear(x, A), B).

const N = 6;
const IN = 20;
const OUT = 12;
const R = 4;
const SCALING = 0.75;

function param(shape: number[], seed: number, dtype: DType, grad: boolean): Tensor {
  return ops.to(ops.tensor(seededValues(shape.reduce((p, d) => p * d, 1), seed, 0.5), shape, { device: TEST_DEVICE }), { dtype }).requiresGrad_(grad);
}

async function run(fused: boolean, dtype: DType, weightAsFunction: boolean): Promise<Float32Array[]> {
  const x = param([2, N / 2, IN], 1, dtype, true);
  const w = param([OUT, IN], 2, dtype, false);
  const a = param([R, IN], 3, 'float32', true);
  const b = param([OUT, R], 4, 'float32', true);
  const y = fused
    ? ops.loraLinear(x, weightAsFunction ? () => ops.mulScalar(w, 1) : w, a, b, SCALING)
    : ops.add(ops.linear(x, w), ops.to(ops.mulScalar(ops.linear(ops.linear(ops.to(x, { dtype: 'float32' }), a), b), SCALING), { dtype }));
  assert.deepStrictEqual(y.shape, [2, N / 2, OUT]);
  assert.equal(y.dtype, dtype);
  const g = ops.to(ops.tensor(seededValues(y.numel, 5), y.shape, { device: TEST_DEVICE }), { dtype });
  await ops.sum(ops.mul(ops.to(y, { dtype: 'float32' }), ops.to(g, { dtype: 'float32' }))).backward();
  return [await y.data(), await x.grad!.data(), await a.grad!.data(), await b.grad!.data()];
}

test('float32 loraLinear equals the composition in value and in every gradient', async () => {
  const ref = await run(false, 'float32', false);
  for (const asFunction of [false, true]) {
    const got = await run(true, 'float32', asFunction);
    ['y', 'dx', 'dA', 'dB'].forEach((what, i) => assertClose(got[i]!, ref[i]!, 1e-5, `${what} (weight ${asFunction ? 'materialized' : 'tensor'})`));
  }
});

test('bfloat16 loraLinear stays within bf16 rounding of the float32-adapter composition', async () => {
  const ref = await run(false, 'bfloat16', false);
  const got = await run(true, 'bfloat16', false);
  ['y', 'dx', 'dA', 'dB'].forEach((what, i) => assertClose(got[i]!, ref[i]!, 3e-2, what));
});

test('a materialized weight is disposed after use and a given weight is not', async () => {
  const w = param([OUT, IN], 2, 'float32', false);
  const made: Tensor[] = [];
  const x = param([N, IN], 1, 'float32', true);
  const y = ops.loraLinear(x, () => {
    const t = ops.mulScalar(w, 1);
    made.push(t);
    return t;
  }, param([R, IN], 3, 'float32', true), param([OUT, R], 4, 'float32', true), SCALING);
  await ops.sum(y).backward();
  assert.equal(made.length, 2, 'materialized once for the forward GEMM and once for dx');
  assert.ok(made.every((t) => t.disposed));
  assert.ok(!w.disposed);
});

test('a frozen input gets no gradient and A, B still do', async () => {
  const x = param([N, IN], 1, 'float32', false);
  const a = param([R, IN], 3, 'float32', true);
  const b = param([OUT, R], 4, 'float32', true);
  await ops.sum(ops.loraLinear(x, param([OUT, IN], 2, 'float32', false), a, b, SCALING)).backward();
  assert.equal(x.grad, null);
  assert.ok(a.grad && b.grad);
});
