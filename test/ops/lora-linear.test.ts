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

// loraLinearGroup: members of different widths and ranks over one input, against one loraLinear per member.
const MEMBERS = [
  { out: 12, r: 4, scaling: 0.75 },
  { out: 8, r: 2, scaling: 2 },
  { out: 8, r: 4, scaling: 0.5 },
];

/** Outputs then gradients (x, then A and B of each member; null where none) of a loss over the `used` outputs. */
async function runGroup(grouped: boolean, used: readonly number[], frozen: { x?: boolean; a0?: boolean } = {}): Promise<(Float32Array | null)[]> {
  const x = param([2, N / 2, IN], 1, 'float32', !frozen.x);
  const members = MEMBERS.map((m, i) => ({
    weight: param([m.out, IN], 10 + i, 'float32', false),
    a: param([m.r, IN], 20 + i, 'float32', !(frozen.a0 && i === 0)),
    b: param([m.out, m.r], 30 + i, 'float32', true),
    scaling: m.scaling,
  }));
  const ys = grouped ? ops.loraLinearGroup(x, members) : members.map((m) => ops.loraLinear(x, m.weight, m.a, m.b, m.scaling));
  ys.forEach((y, i) => assert.deepStrictEqual(y.shape, [2, N / 2, MEMBERS[i]!.out]));
  let loss: Tensor | null = null;
  for (const i of used) {
    const term = ops.sum(ops.mul(ys[i]!, ops.tensor(seededValues(ys[i]!.numel, 40 + i), ys[i]!.shape, { device: TEST_DEVICE })));
    loss = loss ? ops.add(loss, term) : term;
  }
  await loss!.backward();
  const grad = async (t: Tensor) => (t.grad ? t.grad.data() : null);
  return [...(await Promise.all(ys.map((y) => y.data()))), await grad(x), ...(await Promise.all(members.flatMap((m) => [grad(m.a), grad(m.b)])))];
}

async function assertGroupMatches(used: readonly number[], frozen: { x?: boolean; a0?: boolean } = {}): Promise<void> {
  const want = await runGroup(false, used, frozen);
  const got = await runGroup(true, used, frozen);
  got.forEach((v, i) => {
    const w = want[i]!;
    if (w === null) assert.equal(v, null, `entry ${i} should have no gradient`);
    else assertClose(v!, w, 1e-5, `entry ${i}`);
  });
}

test('loraLinearGroup equals one loraLinear per member in every output and gradient', async () => {
  await assertGroupMatches([0, 1, 2]);
});

test('loraLinearGroup: an output the loss does not use leaves its B without a gradient and the others exact', async () => {
  await assertGroupMatches([0, 2]);
  await assertGroupMatches([1]);
});

test('loraLinearGroup: a frozen input and a frozen A get no gradient, the rest still do', async () => {
  await assertGroupMatches([0, 1, 2], { x: true, a0: true });
});

test('loraLinearGroup refuses a member whose A does not fit the input, naming the member', () => {
  const x = param([N, IN], 1, 'float32', false);
  const ok = { weight: param([8, IN], 2, 'float32', false), a: param([2, IN], 3, 'float32', true), b: param([8, 2], 4, 'float32', true), scaling: 1 };
  const bad = { ...ok, a: param([2, IN + 1], 5, 'float32', true) };
  assert.throws(() => ops.loraLinearGroup(x, [ok, bad]), {
    message: `loraLinearGroup: A [2, ${IN + 1}] and B [8, 2] of member 1 do not fit an input of ${IN} features (A must be [r, ${IN}], B [out, r]).`,
  });
});
