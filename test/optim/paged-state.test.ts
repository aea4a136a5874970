import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cudaDriverMissingReason } from '../../src/backend/cuda/index.js';
import { fromHost } from '../../src/ops/index.js';
import { AdamW, type AdamWOptions } from '../../src/optim/adamw.js';
import { f32ArrayToBf16, type DType } from '../../src/tensor/dtype.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import '../../src/index.js';

// Paged AdamW state (moments in pinned host memory, paged in per step on a side stream) must produce exactly the
// parameters and moments of the resident optimizer: both run the same adamw kernel on the same values.

const missing = cudaDriverMissingReason();
const gpuOnly = missing ? `skipped: no GPU on this machine (${missing})` : false;

/** A deterministic sequence in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

function make(n: number, seed: number, dtype: DType, device: string): Tensor {
  const v = values(n, seed);
  return fromHost(dtype === 'bfloat16' ? f32ArrayToBf16(v) : v, [n], dtype, device, true).keep();
}

/** Sizes chosen so that a 64 KiB slot holds several small parameters but must grow for the largest. */
const SPECS: readonly { name: string; n: number; dtype: DType }[] = [
  { name: 'a', n: 1000, dtype: 'float32' },
  { name: 'b', n: 7000, dtype: 'float32' },
  { name: 'c', n: 3, dtype: 'float32' },
  { name: 'd', n: 300_000, dtype: 'float32' },
  { name: 'e', n: 4097, dtype: 'bfloat16' },
  { name: 'f', n: 20_000, dtype: 'float32' },
];

/** Runs `steps` AdamW steps with fresh gradients each step; in step 2 parameter "c" has none. */
async function train(device: string, options: AdamWOptions, steps: number): Promise<{ params: Map<string, Float32Array>; state: Map<string, [number, Float32Array, Float32Array]> }> {
  const params = new Map(SPECS.map((s, i) => [s.name, make(s.n, 17 + i, s.dtype, device)] as const));
  const opt = new AdamW(params, { lr: 1e-2, weightDecay: 0.1, noDecay: (name) => name === 'b', ...options });
  for (let step = 0; step < steps; step++) {
    SPECS.forEach((s, i) => {
      const p = params.get(s.name)!;
      p.grad = step === 2 && s.name === 'c' ? null : make(s.n, 1000 * (step + 1) + i, s.dtype, device);
    });
    opt.prefetchState();
    opt.step();
    opt.zeroGrad();
  }
  const outParams = new Map<string, Float32Array>();
  const outState = new Map<string, [number, Float32Array, Float32Array]>();
  for (const [name, p] of params) {
    outParams.set(name, await p.data());
    const s = opt.stateOf(name)!;
    outState.set(name, [s.step, await s.expAvg.data(), await s.expAvgSq.data()]);
  }
  return { params: outParams, state: outState };
}

test('paged AdamW on the GPU equals resident AdamW bit for bit (several batches, a grown slot, a skipped gradient)', { skip: gpuOnly }, async () => {
  const resident = await train('cuda', {}, 4);
  for (const paged of [{ slotBytes: 64 * 1024 }, { slotBytes: 64 * 1024, slots: 3 }, true] as const) {
    const got = await train('cuda', { paged }, 4);
    for (const { name } of SPECS) {
      assert.deepStrictEqual(got.params.get(name), resident.params.get(name), `parameter ${name} (${JSON.stringify(paged)})`);
      assert.deepStrictEqual(got.state.get(name), resident.state.get(name), `state of ${name} (${JSON.stringify(paged)})`);
    }
    assert.equal(got.state.get('c')![0], 3, 'a step without a gradient leaves the step count alone');
  }
});

test('paged state reports its moments from host memory and reloads saved state', { skip: gpuOnly }, async () => {
  const params = new Map([['w', make(5000, 3, 'float32', 'cuda')]]);
  const opt = new AdamW(params, { paged: { slotBytes: 4096 } });
  assert.deepStrictEqual(opt.stateNames(), []);
  params.get('w')!.grad = make(5000, 4, 'float32', 'cuda');
  opt.step();
  const s = opt.stateOf('w')!;
  assert.equal(s.expAvg.device, 'cpu');
  assert.equal(opt.stateBytes(), 2 * 5000 * 4);

  const copy = new AdamW(new Map([['w', make(5000, 3, 'float32', 'cuda')]]), { paged: true });
  const expAvg = fromHost(await s.expAvg.data(), [5000], 'float32', 'cuda');
  const expAvgSq = fromHost(await s.expAvgSq.data(), [5000], 'float32', 'cuda');
  copy.setState('w', { step: s.step, expAvg, expAvgSq });
  const back = copy.stateOf('w')!;
  assert.equal(back.step, 1);
  assert.deepStrictEqual(await back.expAvgSq.data(), await s.expAvgSq.data());
  assert.ok(expAvg.disposed, 'adopted device tensors are copied to host memory and freed');
});

test('on the CPU the paged option changes nothing', async () => {
  const resident = await train('cpu', {}, 3);
  const paged = await train('cpu', { paged: true }, 3);
  assert.deepStrictEqual(paged, resident);
});
