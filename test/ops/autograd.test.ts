import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ops from '../../src/ops/index.js';
import { scopeAsync } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';

await prepareTestDevice();

test('a second backward() adds into .grad and frees the superseded gradient tensor', async () => {
  const w = ops.tensor([1, 2, 3], { device: TEST_DEVICE, requiresGrad: true });
  await ops.sum(ops.mul(w, w)).backward();
  const first = w.grad!;
  await ops.sum(ops.mulScalar(w, 3)).backward();
  assert.deepEqual(Array.from(await w.grad!.data()), [5, 7, 9]);
  assert.equal(first.disposed, true);
});

test('scopeAsync() frees what a step made but keeps returned tensors and parameter gradients', async () => {
  const w = ops.tensor([1, -1], { device: TEST_DEVICE, requiresGrad: true });
  const made: Tensor[] = [];
  const loss = await scopeAsync(async () => {
    const h = ops.mulScalar(w, 2);
    made.push(h);
    const l = ops.sum(ops.mul(h, h));
    await l.backward();
    return l;
  });
  assert.equal(made[0]!.disposed, true);
  assert.equal(loss.disposed, false);
  assert.deepEqual(Array.from(await w.grad!.data()), [8, -8]);
});

test('backward() on a graph with no trainable input is refused with a clear message', async () => {
  const x = ops.tensor([1, 2], { device: TEST_DEVICE });
  await assert.rejects(ops.sum(x).backward(), /does not require grad/);
});
