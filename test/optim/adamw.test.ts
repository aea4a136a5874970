import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../../src/index.js';
import { tensor } from '../../src/ops/index.js';
import { AdamW, loadOptimizerState, saveOptimizerState } from '../../src/optim/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';

await prepareTestDevice();
const on = { device: TEST_DEVICE };

function setGrad(p: Tensor, g: number[]): void {
  p.grad = tensor(g, on).keep();
}

test('one AdamW step follows torch: decay, then lr * m_hat / (sqrt(v_hat) + eps)', async () => {
  const p = tensor([1, -2], on).requiresGrad_();
  const opt = new AdamW(new Map([['w', p]]), { lr: 0.1, weightDecay: 0.5 });
  setGrad(p, [0.5, -0.25]);
  opt.step();
  // Step 1: m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps) ~ lr * sign(g), after p *= 1 - lr * wd.
  const got = await p.data();
  assert.ok(Math.abs(got[0]! - (1 * 0.95 - 0.1)) < 1e-6);
  assert.ok(Math.abs(got[1]! - (-2 * 0.95 + 0.1)) < 1e-6);
  assert.equal(opt.stateOf('w')!.step, 1);
});

test('a parameter without a gradient is skipped and its step count stays', async () => {
  const a = tensor([1], on).requiresGrad_();
  const b = tensor([1], on).requiresGrad_();
  const opt = new AdamW(new Map([['a', a], ['b', b]]));
  setGrad(a, [1]);
  opt.step();
  assert.equal(opt.stateOf('a')!.step, 1);
  assert.equal(opt.stateOf('b'), undefined);
  assert.deepEqual(Array.from(await b.data()), [1]);
});

test('zeroGrad frees the gradients', () => {
  const a = tensor([1], on).requiresGrad_();
  setGrad(a, [1]);
  new AdamW(new Map([['a', a]])).zeroGrad();
  assert.equal(a.grad, null);
});

test('saved optimizer state continues bit for bit', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'loraforge-adamw-'));
  try {
    const grads = [[0.1, -0.3, 0.2], [0.05, 0.4, -0.1], [-0.2, 0.1, 0.3]];
    const p1 = tensor([0.5, 0.1, -0.7], on).requiresGrad_();
    const o1 = new AdamW(new Map([['w', p1]]), { lr: 0.01 });
    for (const g of grads.slice(0, 2)) {
      setGrad(p1, g);
      o1.step();
    }
    await saveOptimizerState(join(dir, 'optimizer.safetensors'), o1);
    const p2 = tensor(Array.from(await p1.data()), on).requiresGrad_();
    const o2 = new AdamW(new Map([['w', p2]]), { lr: 0.01 });
    await loadOptimizerState(join(dir, 'optimizer.safetensors'), o2, TEST_DEVICE);
    assert.equal(o2.stateOf('w')!.step, 2);
    setGrad(p1, grads[2]!);
    o1.step();
    setGrad(p2, grads[2]!);
    o2.step();
    assert.deepEqual(Array.from(await p2.data()), Array.from(await p1.data()));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
