import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getBackend } from '../../src/backend/registry.js';
import * as ops from '../../src/ops/index.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import type { DType } from '../../src/tensor/dtype.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';
import { assertClose, seededValues } from '../helpers/numeric.js';

await prepareTestDevice();

// multiLoraLinear against a float64 reference written here: out[i] = base[i] + scale_s (x[i] A_s^T) B_s^T per row.

const IN = 37;
const OUT = 29;
const POSITIONS = 2;
/** Ranks and scales of the adapters rows can name (different ranks in one call). */
const ADAPTERS = [{ rank: 4, scale: 0.5 }, { rank: 1, scale: 2 }, { rank: 7, scale: -0.25 }];

function values(shape: number[], seed: number, dtype: DType = 'float32'): Tensor {
  return ops.tensor(seededValues(shape.reduce((p, d) => p * d, 1), seed), shape, { device: TEST_DEVICE, dtype });
}

function adapters(dtype: DType = 'float32', specs = ADAPTERS, inF = IN, outF = OUT): ops.MultiLoraAdapter[] {
  return specs.map(({ rank, scale }, i) => ({ a: values([rank, inF], 10 + i, dtype), b: values([outF, rank], 20 + i, dtype), scale }));
}

async function reference(x: Tensor, base: Tensor, list: readonly ops.MultiLoraAdapter[], rowAdapter: readonly number[]): Promise<Float32Array> {
  const IN = x.shape[2]!;
  const OUT = base.shape[2]!;
  const POSITIONS = x.shape[1]!;
  const xs = await x.data(), out = Float32Array.from(await base.data());
  const weights = await Promise.all(list.map(async ({ a, b }) => ({ a: await a.data(), b: await b.data() })));
  rowAdapter.forEach((s, row) => {
    if (s === -1) return;
    const rank = list[s]!.a.shape[0]!;
    const scale = list[s]!.scale;
    for (let p = 0; p < POSITIONS; p++) {
      const r = row * POSITIONS + p;
      const h = Array.from({ length: rank }, (_, t) => {
        let sum = 0;
        for (let c = 0; c < IN; c++) sum += weights[s]!.a[t * IN + c]! * xs[r * IN + c]!;
        return sum;
      });
      for (let j = 0; j < OUT; j++) {
        let sum = 0;
        for (let t = 0; t < rank; t++) sum += weights[s]!.b[j * rank + t]! * h[t]!;
        out[r * OUT + j] = out[r * OUT + j]! + scale * sum;
      }
    }
  });
  return out;
}

test('multiLoraLinear adds each row\'s own adapter (ranks differ, -1 keeps the base row) as the float64 reference does', async () => {
  const rowAdapter = [2, -1, 0, 0, 1, 2];
  const x = values([rowAdapter.length, POSITIONS, IN], 1);
  const base = values([rowAdapter.length, POSITIONS, OUT], 2);
  const list = adapters();
  const expected = await reference(x, base, list, rowAdapter);
  const out = noGrad(() => ops.multiLoraLinear(x, base, list, rowAdapter));
  assert.deepEqual(out.shape, base.shape);
  assertClose(await out.data(), expected, 1e-5, 'multiLoraLinear');
  const backend = getBackend(TEST_DEVICE);
  if (backend.batchInvariant) {
    const invariant = backend.batchInvariant(() => noGrad(() => ops.multiLoraLinear(x, base, list, rowAdapter)));
    assertClose(await invariant.data(), expected, 1e-5, 'multiLoraLinear, batch-invariant');
  }
});

for (const dtype of ['bfloat16', 'float16'] as const) {
  test(`${dtype}: multiLoraLinear computes the low-rank product in float32 and rounds once into the output`, async () => {
    const rowAdapter = [0, 2, -1];
    const x = values([rowAdapter.length, POSITIONS, IN], 3, dtype);
    const base = values([rowAdapter.length, POSITIONS, OUT], 4, dtype);
    const list = adapters(dtype);
    const out = noGrad(() => ops.multiLoraLinear(x, base, list, rowAdapter));
    assert.equal(out.dtype, dtype);
    assertClose(await out.data(), await reference(x, base, list, rowAdapter), dtype === 'bfloat16' ? 1e-2 : 1e-3, dtype);
  });
}

test('a row gets the same bits alone and in any batch under the backend\'s batch-invariant mode', async (t) => {
  const backend = getBackend(TEST_DEVICE);
  if (!backend.batchInvariant) return t.skip(`${TEST_DEVICE} has no batch-invariant mode`);
  const run = backend.batchInvariant.bind(backend);
  // Rank 20 takes two rank chunks of the CUDA kernel; six rows of one adapter fill more than one tile of rows.
  const list = adapters('float32', [{ rank: 20, scale: 0.5 }, ...ADAPTERS.slice(1)]);
  const rowAdapter = [1, 1, 0, 2, 2, 2, -1, 0, 2, 0, 2, 0, 2, 0, 0, -1];
  const x = values([rowAdapter.length, 1, IN], 5);
  const base = values([rowAdapter.length, 1, OUT], 6);
  const batch = await run(() => noGrad(() => ops.multiLoraLinear(x, base, list, rowAdapter))).data();
  for (const [row, s] of rowAdapter.entries()) {
    const alone = run(() => noGrad(() => ops.multiLoraLinear(ops.narrow(x, 0, row, 1), ops.narrow(base, 0, row, 1), list, [s])));
    assert.deepEqual(await alone.data(), batch.slice(row * OUT, (row + 1) * OUT), `row ${row}`);
  }
});

// Features a multiple of 8 and ranks a multiple of 8 take the CUDA kernel's vector loads; 37 features and ranks
// 1, 4, 7 above take its scalar loads.
for (const dtype of ['float32', 'bfloat16'] as const) {
  test(`${dtype}: aligned shapes (64 -> 40 features, ranks 8 and 16) agree with the reference, alone and batched`, async () => {
    const specs = [{ rank: 16, scale: 0.5 }, { rank: 8, scale: -1 }];
    const list = adapters(dtype, specs, 64, 40);
    const rowAdapter = [1, 0, -1, 0, 1];
    const x = values([rowAdapter.length, 1, 64], 11, dtype);
    const base = values([rowAdapter.length, 1, 40], 12, dtype);
    const out = noGrad(() => ops.multiLoraLinear(x, base, list, rowAdapter));
    assertClose(await out.data(), await reference(x, base, list, rowAdapter), dtype === 'bfloat16' ? 1e-2 : 1e-5, dtype);
    const backend = getBackend(TEST_DEVICE);
    if (!backend.batchInvariant) return;
    const run = backend.batchInvariant.bind(backend);
    const batch = await run(() => noGrad(() => ops.multiLoraLinear(x, base, list, rowAdapter))).data();
    for (const [row, s] of rowAdapter.entries()) {
      const alone = run(() => noGrad(() => ops.multiLoraLinear(ops.narrow(x, 0, row, 1), ops.narrow(base, 0, row, 1), list, [s])));
      assert.deepEqual(await alone.data(), batch.slice(row * 40, (row + 1) * 40), `row ${row}`);
    }
  });
}

test('multiLoraLinear refuses inputs that would need a gradient, and indices or shapes that do not fit', () => {
  const x = values([2, 1, IN], 7);
  const base = values([2, 1, OUT], 8);
  const list = adapters();
  list[0]!.a.requiresGrad_(true);
  assert.throws(() => ops.multiLoraLinear(x, base, list, [0, 1]), /records no gradient; run it under noGrad\(\)/);
  noGrad(() => {
    assert.throws(() => ops.multiLoraLinear(x, base, list, [0]), /1 adapter indices for a batch of 2 rows/);
    assert.throws(() => ops.multiLoraLinear(x, base, list, [0, 3]), /row 1 names adapter 3; use -1 or an index below 3/);
    assert.throws(() => ops.multiLoraLinear(x, values([2, 1, OUT + 1], 9), list, [0, 1]), /do not map 37 features to 30/);
    assert.throws(() => ops.multiLoraLinear(x, values([3, 1, OUT], 9), list, [0, 1, 2]), /must agree on every dimension but the last/);
  });
});

test('multiLoraLinearGroup: five projections of one input in one call, each with the bits of its own multiLoraLinear call', async () => {
  const backend = getBackend(TEST_DEVICE);
  const rowAdapter = [0, 2, -1, 1, 0];
  const x = values([rowAdapter.length, POSITIONS, IN], 21);
  // Out features differ; the last projection's rows name its adapters in another order, and one names none.
  const outs = [29, 8, 1030, 5, 17];
  const projections = outs.map((outF, p) => {
    const list = adapters('float32', ADAPTERS, IN, outF).map((a) => ({ ...a, scale: a.scale * (p + 1) }));
    const rows = p === 3 ? rowAdapter.map(() => -1) : p === 4 ? rowAdapter.map((s) => (s === -1 ? 0 : 2 - s)) : rowAdapter;
    return { base: values([rowAdapter.length, POSITIONS, outF], 30 + p), list, rows };
  });
  const calls: number[] = [];
  // Counted where the backend has the kernel; on one without it (cpu-primitives) the bits below still hold.
  const original = backend.multiLora?.bind(backend);
  if (original) {
    backend.multiLora = (args) => {
      calls.push(args.outputs.length);
      original(args);
    };
  }
  let grouped: Tensor[];
  try {
    grouped = noGrad(() => ops.multiLoraLinearGroup(x, projections.map(({ base, list, rows }) => ({ base, plan: ops.prepareMultiLora(list, rows, IN, base.shape[2]!) }))));
  } finally {
    delete (backend as { multiLora?: unknown }).multiLora;
  }
  if (original) assert.deepEqual(calls, [5], 'one backend call for all five');
  for (const [p, { base, list, rows }] of projections.entries()) {
    const alone = noGrad(() => ops.multiLoraLinear(x, base, list, rows));
    assert.deepEqual(await grouped[p]!.data(), await alone.data(), `projection ${p}`);
    assertClose(await grouped[p]!.data(), await reference(x, base, list, rows), 1e-5, `projection ${p} vs the reference`);
  }
});

test('multiLoraLinearGroup with consumeBase writes over base outputs that start their buffer, with the same bits', async () => {
  const rowAdapter = [1, -1, 2, 0];
  const x = values([rowAdapter.length, POSITIONS, IN], 41);
  const list = adapters();
  const plan = ops.prepareMultiLora(list, rowAdapter, IN, OUT);
  const fresh = () => values([rowAdapter.length, POSITIONS, OUT], 42);
  const expected = await noGrad(() => ops.multiLoraLinear(x, fresh(), plan)).data();
  // A base at offset 0 is overwritten in place; a base that is a view further into its buffer gets a new buffer.
  const owned = fresh();
  const wide = values([rowAdapter.length + 1, POSITIONS, OUT], 43);
  const view = ops.narrow(wide, 0, 1, rowAdapter.length);
  const viewBefore = await view.data();
  const [inPlace, moved] = noGrad(() => ops.multiLoraLinearGroup(x, [{ base: owned, plan }, { base: view, plan }], true));
  assert.equal(inPlace!.buffer, owned.buffer, 'written over the base it consumed');
  assert.notEqual(moved!.buffer, wide.buffer, 'a view with an offset is not written over');
  assert.deepEqual(await inPlace!.data(), expected);
  assert.deepEqual(await view.data(), viewBefore, 'the offset view keeps its values');
  assertClose(await moved!.data(), await reference(x, view, list, rowAdapter), 1e-5, 'the offset view\'s result');
});

test('wide inputs (4104 features: three CUDA feature splits) over 100 rows: the reference per projection, and each row alone', async () => {
  const inF = 4104;
  const specs = [{ rank: 16, scale: 0.5 }, { rank: 20, scale: -0.75 }, { rank: 8, scale: 2 }];
  const rowAdapter = Array.from({ length: 100 }, (_, i) => (i % 7 === 3 ? -1 : i % 3));
  const x = values([rowAdapter.length, 1, inF], 51, 'bfloat16');
  const projections = [1100, 24].map((outF, p) => ({ base: values([rowAdapter.length, 1, outF], 52 + p, 'bfloat16'), list: adapters('bfloat16', specs, inF, outF) }));
  const plans = projections.map(({ base, list }) => ops.prepareMultiLora(list, rowAdapter, inF, base.shape[2]!));
  const outs = noGrad(() => ops.multiLoraLinearGroup(x, projections.map(({ base }, p) => ({ base, plan: plans[p]! }))));
  for (const [p, { base, list }] of projections.entries()) {
    assertClose(await outs[p]!.data(), await reference(x, base, list, rowAdapter), 2e-2, `projection ${p}`);
  }
  const backend = getBackend(TEST_DEVICE);
  if (!backend.batchInvariant) return;
  const run = backend.batchInvariant.bind(backend);
  const batch = await run(() => noGrad(() => ops.multiLoraLinear(x, projections[0]!.base, plans[0]!))).data();
  for (const row of [0, 3, 50, 99]) {
    const { base, list } = projections[0]!;
    const alone = run(() => noGrad(() => ops.multiLoraLinear(ops.narrow(x, 0, row, 1), ops.narrow(base, 0, row, 1), list, [rowAdapter[row]!])));
    assert.deepEqual(await alone.data(), batch.slice(row * 1100, (row + 1) * 1100), `row ${row}`);
  }
});

test('prepareMultiLora reuses its checks of an adapter object only for the same features, and never once it is disposed', () => {
  const [adapter] = adapters();
  const first = ops.prepareMultiLora([adapter!], [0, -1], IN, OUT);
  const again = ops.prepareMultiLora([adapter!], [-1, 0], IN, OUT);
  assert.equal(again.views[0], first.views[0], 'the checked view is reused for a new row map');
  assert.throws(() => ops.prepareMultiLora([adapter!], [0], IN + 1, OUT), /do not map 38 features to 29/);
  adapter!.a.dispose();
  assert.throws(() => ops.prepareMultiLora([adapter!], [0], IN, OUT), /disposed tensor/);
});
