import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/index.js';
import { tensor } from '../../src/ops/index.js';
import { clipGradNorm } from '../../src/optim/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';

function paramWithGrad(values: number[], grad: number[]): Tensor {
  const p = tensor(values).requiresGrad_();
  p.grad = tensor(grad).keep();
  return p;
}

test('clipGradNorm returns the total 2-norm over all gradients and scales them by maxNorm / (norm + 1e-6)', async () => {
  const a = paramWithGrad([0, 0], [3, 4]);
  const b = paramWithGrad([0], [12]);
  const norm = await clipGradNorm([a, b], 6.5);
  assert.equal(norm, 13);
  const coef = Math.fround(6.5 / (13 + 1e-6));
  assert.deepEqual(Array.from(await a.grad!.data()), [Math.fround(3 * coef), Math.fround(4 * coef)]);
  assert.deepEqual(Array.from(await b.grad!.data()), [Math.fround(12 * coef)]);
});

test('gradients within the limit are left as they are', async () => {
  const a = paramWithGrad([0, 0], [0.3, 0.4]);
  assert.ok(Math.abs((await clipGradNorm([a], 1)) - 0.5) < 1e-7);
  assert.deepEqual(Array.from(await a.grad!.data()), [Math.fround(0.3), Math.fround(0.4)]);
});

test('parameters without a gradient are ignored', async () => {
  const a = paramWithGrad([0], [2]);
  const frozen = tensor([1, 2]).requiresGrad_();
  assert.equal(await clipGradNorm([a, frozen], 10), 2);
  assert.equal(frozen.grad, null);
});
