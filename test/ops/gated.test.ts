/**
 * ops.gatedActivation (a gated MLP's act(gate) * up) against the composed ops it replaces, bit for bit, forward
 * and backward, on the backend selected by LORAFORGE_TEST_DEVICE; and against a float64 reference.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ops from '../../src/ops/index.js';
import { getBackend } from '../../src/backend/registry.js';
import type { DType } from '../../src/tensor/dtype.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { PRIMITIVES_DEVICE, TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';
import { assertClose, seededValues } from '../helpers/numeric.js';

await prepareTestDevice();

const ACTS: { name: string; ref: (x: number) => number }[] = [
  { name: 'silu', ref: (x) => x / (1 + Math.exp(-x)) },
  { name: 'gelu_pytorch_tanh', ref: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))) },
];
const TOL: Record<string, number> = { float32: 1e-6, bfloat16: 2e-2, float16: 2e-3 };

/** gate and up of one layout, leaves that require grad, and the views the MLP hands over. */
interface Layout {
  what: string;
  make(dtype: DType, seed: number): { leaves: Tensor[]; gate: Tensor; up: Tensor };
}

function leaf(shape: number[], dtype: DType, seed: number): Tensor {
  const v = seededValues(shape.reduce((p, d) => p * d, 1), seed, 4);
  return ops.tensor(v, shape, { device: TEST_DEVICE, dtype, requiresGrad: true });
}

const LAYOUTS: Layout[] = [
  { what: 'contiguous [2, 3, 24]', make: (dt, s) => { const g = leaf([2, 3, 24], dt, s); const u = leaf([2, 3, 24], dt, s + 1); return { leaves: [g, u], gate: g, up: u }; } },
  { what: 'contiguous [5, 13]', make: (dt, s) => { const g = leaf([5, 13], dt, s); const u = leaf([5, 13], dt, s + 1); return { leaves: [g, u], gate: g, up: u }; } },
  ...[24, 13].map((cols): Layout => ({
    what: `halves of a fused [4, 2, ${2 * cols}] gate_up`,
    make: (dt, s) => {
      const both = leaf([4, 2, 2 * cols], dt, s);
      return { leaves: [both], gate: ops.narrow(both, 2, 0, cols), up: ops.narrow(both, 2, cols, cols) };
    },
  })),
  {
    what: 'a transposed gate (no single row stride)',
    make: (dt, s) => {
      const g = leaf([16, 8], dt, s);
      const u = leaf([8, 16], dt, s + 1);
      return { leaves: [g, u], gate: ops.transpose(g, 0, 1), up: u };
    },
  },
];

async function bits(t: Tensor): Promise<number[]> {
  return [...(await ops.to(t, { dtype: 'float32' }).data())];
}

/** Output and leaf gradients of f over one layout, backward from a fixed weighting of the output. */
async function run(layout: Layout, dtype: DType, f: (gate: Tensor, up: Tensor) => Tensor, gradDtype: DType): Promise<number[][]> {
  const { leaves, gate, up } = layout.make(dtype, 7);
  const out = f(gate, up);
  const w = ops.to(ops.tensor(seededValues(out.numel, 99), out.shape, { device: TEST_DEVICE }), { dtype: gradDtype });
  await out.backward(w);
  return [await bits(out), ...(await Promise.all(leaves.map((l) => bits(l.grad!))))];
}

// On cpu-primitives (no fused kernels) the tests below check that the composition serves every case instead.
const fuses = TEST_DEVICE !== PRIMITIVES_DEVICE;
test(`the ${TEST_DEVICE} backend ${fuses ? 'fuses' : 'has no kernel for'} the gated activation (the tests below then compare two code paths${fuses ? '' : ': both composed'})`, () => {
  const b = getBackend(TEST_DEVICE);
  assert.equal(typeof b.gated, fuses ? 'function' : 'undefined');
  assert.equal(typeof b.gatedBackward, fuses ? 'function' : 'undefined');
});

for (const dtype of ['float32', 'bfloat16', 'float16'] as DType[]) {
  for (const act of ACTS) {
    for (const layout of LAYOUTS) {
      test(`${dtype} ${act.name}, ${layout.what}: output and gradients equal the composed ops bit for bit`, async () => {
        const fused = await run(layout, dtype, (g, u) => ops.gatedActivation(act.name, g, u), dtype);
        const composed = await run(layout, dtype, (g, u) => ops.mul(ops.activation(act.name, g), u), dtype);
        fused.forEach((v, i) => assert.deepEqual(v, composed[i], i === 0 ? 'output' : `gradient of leaf ${i - 1}`));
      });
    }
    test(`${dtype} ${act.name}: output within rounding of act(gate) * up in float64`, async () => {
      const { gate, up } = LAYOUTS[0]!.make(dtype, 3);
      const got = await bits(ops.gatedActivation(act.name, gate, up));
      const g = await bits(gate);
      const u = await bits(up);
      assertClose(got, g.map((x, i) => act.ref(x) * u[i]!), TOL[dtype]!, 'gated');
    });
  }
}

test('a float32 gradient into a bfloat16 gated output flows back as the composed ops send it', async () => {
  for (const layout of [LAYOUTS[0]!, LAYOUTS[2]!]) {
    const fused = await run(layout, 'bfloat16', (g, u) => ops.gatedActivation('silu', g, u), 'float32');
    const composed = await run(layout, 'bfloat16', (g, u) => ops.mul(ops.activation('silu', g), u), 'float32');
    fused.forEach((v, i) => assert.deepEqual(v, composed[i], `${layout.what}: ${i === 0 ? 'output' : `gradient of leaf ${i - 1}`}`));
  }
});

test('an activation without a fused kernel (relu) and mismatched dtypes give the composed result', async () => {
  const g = leaf([3, 8], 'float32', 1);
  const u = leaf([3, 8], 'float32', 2);
  assert.deepEqual(await bits(ops.gatedActivation('relu', g, u)), await bits(ops.mul(ops.relu(g), u)));
  const ub = ops.to(u, { dtype: 'bfloat16' });
  assert.deepEqual(await bits(ops.gatedActivation('silu', g, ub)), await bits(ops.mul(ops.silu(g), ub)));
  assert.throws(() => ops.gatedActivation('tanh', g, u), /Activation "tanh" is not supported; supported activations are silu, swish/);
});
