/**
 * Backend conformance: every kernel against an independent float64 reference written here, on the backend
 * selected by LORAFORGE_TEST_DEVICE (cpu by default; npm run test:cuda runs the same file on the GPU).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ops from '../../src/ops/index.js';
import { getBackend } from '../../src/backend/registry.js';
import { pickToken } from '../../src/generate/sampling.js';
import { Rng } from '../../src/tensor/random.js';
import type { DType } from '../../src/tensor/dtype.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';
import { assertClose, seededValues } from '../helpers/numeric.js';

await prepareTestDevice();
const dev = TEST_DEVICE;
const FLOATS: { dtype: DType; tol: number }[] = [
  { dtype: 'float32', tol: 1e-5 },
  { dtype: 'bfloat16', tol: 2e-2 },
  { dtype: 'float16', tol: 2e-3 },
];

function t(values: Float32Array, shape: number[], dtype: DType = 'float32') {
  return ops.tensor(values, shape, { device: dev, dtype });
}

/** Values as the dtype stores them, so references see the same rounded inputs. */
async function stored(values: Float32Array, dtype: DType): Promise<Float32Array> {
  return ops.tensor(values, [values.length], { dtype }).data();
}

for (const { dtype, tol } of FLOATS) {
  test(`${dtype}: matmul with transposes, batch and broadcast matches a float64 GEMM`, async () => {
    for (const [m, k, n, ta, tb] of [[5, 7, 3, false, false], [17, 33, 9, true, false], [4, 65, 31, false, true], [1, 8, 129, true, true]] as const) {
      const av = seededValues(2 * m * k, m + k), bv = seededValues(k * n, n);
      const A = await stored(av, dtype), Bm = await stored(bv, dtype);
      const a = t(av, ta ? [2, k, m] : [2, m, k], dtype);
      const b = t(bv, tb ? [n, k] : [k, n], dtype);
      const out = await ops.matmul(ta ? ops.transpose(a) : a, tb ? ops.transpose(b) : b).data();
      const ref = new Float32Array(2 * m * n);
      for (let bi = 0; bi < 2; bi++) for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
        let s = 0;
        for (let l = 0; l < k; l++) s += A[bi * m * k + (ta ? l * m + i : i * k + l)]! * Bm[tb ? j * k + l : l * n + j]!;
        ref[bi * m * n + i * n + j] = s;
      }
      assertClose(out, ref, tol * Math.sqrt(k), `matmul ${m}x${k}x${n} ta=${ta} tb=${tb}`);
    }
  });

  test(`${dtype}: softmax, rmsNorm and rope rows match their definitions`, async () => {
    const rows = 6, cols = 16;
    const xv = await stored(seededValues(rows * cols, 3, 3), dtype);
    const sm = await ops.softmax(t(xv, [rows, cols], dtype)).data();
    const rn = await ops.rmsNorm(t(xv, [rows, cols], dtype), t(Float32Array.from({ length: cols }, (_, i) => 0.5 + i / cols), [cols], dtype), 1e-6).data();
    const refSm = new Float32Array(rows * cols), refRn = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      const row = xv.subarray(r * cols, (r + 1) * cols);
      const mx = Math.max(...row);
      const z = row.reduce((p, v) => p + Math.exp(v - mx), 0);
      const ms = row.reduce((p, v) => p + v * v, 0) / cols;
      for (let i = 0; i < cols; i++) {
        refSm[r * cols + i] = Math.exp(row[i]! - mx) / z;
        refRn[r * cols + i] = (row[i]! / Math.sqrt(ms + 1e-6)) * (0.5 + i / cols);
      }
    }
    assertClose(sm, refSm, tol, 'softmax');
    assertClose(rn, refRn, tol * 2, 'rmsNorm');
    // rope on [1, 2, 3, 8]: rotate-half with per-position angles
    const D = 8, T = 2, H = 3;
    const xr = await stored(seededValues(T * H * D, 9), dtype);
    const cos = new Float32Array(T * D), sin = new Float32Array(T * D);
    for (let p = 0; p < T; p++) for (let i = 0; i < D; i++) {
      cos[p * D + i] = Math.cos((p + 1) * (i % (D / 2) + 1) * 0.3);
      sin[p * D + i] = Math.sin((p + 1) * (i % (D / 2) + 1) * 0.3);
    }
    const rp = await ops.rope(t(xr, [1, T, H, D], dtype), t(cos, [T, D]), t(sin, [T, D])).data();
    const refRp = new Float32Array(T * H * D);
    for (let p = 0; p < T; p++) for (let h = 0; h < H; h++) for (let i = 0; i < D; i++) {
      const o = (p * H + h) * D;
      const rot = i < D / 2 ? -xr[o + i + D / 2]! : xr[o + i - D / 2]!;
      refRp[o + i] = xr[o + i]! * cos[p * D + i]! + rot * sin[p * D + i]!;
    }
    assertClose(rp, refRp, tol, 'rope');
  });

  test(`${dtype}: elementwise, broadcast, reductions and strided copies`, async () => {
    const av = await stored(seededValues(24, 4), dtype), bv = await stored(seededValues(4, 5), dtype);
    const a = t(av, [2, 3, 4], dtype), b = t(bv, [4], dtype);
    assertClose(await ops.mul(a, b).data(), av.map((v, i) => v * bv[i % 4]!), tol, 'mul');
    assertClose(await ops.sub(a, b).data(), av.map((v, i) => v - bv[i % 4]!), tol, 'sub');
    assertClose(await ops.silu(a).data(), av.map((v) => v / (1 + Math.exp(-v))), tol, 'silu');
    assertClose(await ops.exp(a).data(), av.map((v) => Math.exp(v)), tol, 'exp');
    const s1 = await ops.sum(a, 1).data();
    const ref = new Float32Array(8);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) ref[i * 4 + k]! += av[i * 12 + j * 4 + k]!;
    assertClose(s1, ref, tol * 3, 'sum over a middle dim');
    const perm = await ops.contiguous(ops.permute(a, [2, 0, 1])).data();
    for (let k = 0; k < 4; k++) for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) assert.equal(perm[k * 6 + i * 3 + j], av[i * 12 + j * 4 + k]);
    assertClose(await ops.to(a, { dtype: 'float32' }).data(), av, 0, 'cast to float32 is exact');
  });

  test(`${dtype}: embedding gathers rows and cross-entropy matches log-sum-exp`, async () => {
    const table = await stored(seededValues(5 * 3, 6), dtype);
    const e = await ops.embedding(ops.tensor([4, 0, 4], [3], { dtype: 'int32', device: dev }), t(table, [5, 3], dtype)).data();
    assert.deepEqual(Array.from(e), [...table.subarray(12, 15), ...table.subarray(0, 3), ...table.subarray(12, 15)]);
    const lg = await stored(seededValues(3 * 7, 7, 4), dtype);
    const loss = await ops.crossEntropy(t(lg, [3, 7], dtype), ops.tensor([6, -100, 2], [3], { dtype: 'int32', device: dev })).item();
    const rowLoss = (r: number, y: number) => {
      const row = lg.subarray(r * 7, r * 7 + 7);
      const mx = Math.max(...row);
      return mx + Math.log(row.reduce((p, v) => p + Math.exp(v - mx), 0)) - row[y]!;
    };
    assert.ok(Math.abs(loss - (rowLoss(0, 6) + rowLoss(2, 2)) / 2) < 1e-4, `cross-entropy ${loss}`);
  });
}

test('adamw kernel follows torch.optim.AdamW for two steps', () => {
  const backend = getBackend(dev);
  const p = backend.fromHost('float32', Float32Array.from([0.5, -1, 2]));
  const g = backend.fromHost('float32', Float32Array.from([0.1, -0.2, 0.3]));
  const m = backend.fromHost('float32', new Float32Array(3));
  const v = backend.fromHost('float32', new Float32Array(3));
  const args = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
  backend.adamw(p, g, m, v, 3, { ...args, step: 1 });
  backend.adamw(p, g, m, v, 3, { ...args, step: 2 });
  return backend.toHost(p, 0, 3).then((host) => {
    // float64 reference of the same two steps
    const ref = [0.5, -1, 2].map((p0, i) => {
      let x = p0, mm = 0, vv = 0;
      const gi = [0.1, -0.2, 0.3][i]!;
      for (let s = 1; s <= 2; s++) {
        x *= 1 - 1e-2 * 0.1;
        mm = 0.9 * mm + 0.1 * gi;
        vv = 0.999 * vv + 0.001 * gi * gi;
        x -= (1e-2 / (1 - 0.9 ** s)) * (mm / (Math.sqrt(vv) / Math.sqrt(1 - 0.999 ** s) + 1e-8));
      }
      return x;
    });
    assertClose(host as Float32Array, ref, 1e-6, 'adamw');
  });
});

test('nf4Dequantize maps high nibble first and scales per block', async () => {
  const backend = getBackend(dev);
  const code = Float32Array.from({ length: 16 }, (_, i) => (i - 7.5) / 7.5);
  const packed = Uint8Array.from([0x0f, 0x70, 0xa5, 0x33]);
  const out = backend.alloc('float32', 8);
  backend.nf4Dequantize(backend.fromHost('uint8', packed), backend.fromHost('float32', Float32Array.from([2, 0.5])), backend.fromHost('float32', code), 8, 4, out);
  const host = (await backend.toHost(out, 0, 8)) as Float32Array;
  const nibbles = [0x0, 0xf, 0x7, 0x0, 0xa, 0x5, 0x3, 0x3];
  assertClose(host, nibbles.map((nb, i) => code[nb]! * (i < 4 ? 2 : 0.5)), 1e-7, 'nf4');
});

/** The host greedy pick, restated: best = 0, then move only to a strictly greater element. */
function argmaxLoop(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/** [rows, cols] values that probe argmax's semantics, with what each row must give where it is not just the loop's. */
function argmaxCases(cols: number): { values: Float32Array; rows: number; expect: (number | null)[] } {
  const rand = seededValues(cols, 41 + cols, 4);
  const make: [(i: number) => number, number | null][] = [
    [(i) => rand[i]!, null],
    [() => -Infinity, 0], // a row of -inf: the first index
    [(i) => (i === 0 ? NaN : rand[i]!), 0], // a leading NaN is never left
    [(i) => (i % 7 === 3 ? NaN : rand[i]!), null], // NaNs inside are skipped
    [() => NaN, 0],
    [(i) => (i === cols - 1 || i === Math.floor(cols / 2) || i === 5 ? 9 : rand[i]!), Math.min(cols > 5 ? 5 : cols, Math.floor(cols / 2), cols - 1)], // ties: lowest index
    [(i) => (i % 2 ? 0 : -0), 0], // +0 and -0 tie
    [(i) => (i === cols - 1 ? 5 : -5), cols - 1],
    [(i) => (i % 3 === 2 ? Infinity : rand[i]!), cols > 2 ? 2 : 0],
    [(i) => (i === 0 ? -Infinity : i % 5 === 4 ? NaN : -Infinity), 0], // -inf then NaNs: stays at 0
    [() => 1.5, 0],
  ];
  const values = new Float32Array(make.length * cols);
  make.forEach(([fill], r) => {
    for (let i = 0; i < cols; i++) values[r * cols + i] = fill(i);
  });
  return { values, rows: make.length, expect: make.map(([, e]) => e) };
}

for (const { dtype } of FLOATS) {
  test(`${dtype}: argmax picks what the host greedy pick picks (ties lowest, -inf rows, NaN)`, async () => {
    const backend = getBackend(dev);
    const rng = new Rng(1);
    for (const cols of [1, 2, 7, 3001, 20000]) {
      const { values, rows, expect } = argmaxCases(cols);
      const xs = await stored(values, dtype);
      const ref = Array.from({ length: rows }, (_, r) => argmaxLoop(xs.subarray(r * cols, (r + 1) * cols)));
      for (let r = 0; r < rows; r++) {
        const row = xs.subarray(r * cols, (r + 1) * cols);
        assert.equal(pickToken(row, {}, rng), ref[r], `the loop restates pickToken's greedy branch (row ${r}, ${cols} cols)`);
        if (expect[r] !== null) assert.equal(ref[r], expect[r], `row ${r} of ${cols} cols`);
      }
      const got = await ops.argmax(t(values, [rows, cols], dtype)).intData();
      assert.deepEqual(Array.from(got), ref, `ops.argmax ${dtype} [${rows}, ${cols}]`);
      // The kernel from an element offset: rows 1.. of the same buffer.
      const x = t(values, [values.length], dtype);
      const out = backend.alloc('int32', rows - 1);
      backend.argmax(x.buffer, cols, rows - 1, cols, out);
      assert.deepEqual(Array.from((await backend.toHost(out, 0, rows - 1)) as Int32Array), ref.slice(1), `backend.argmax from offset ${cols}`);
    }
  });
}

test('ops.argmax: int32 over the last dim of any leading shape, through strided views, without a gradient', async () => {
  const v = seededValues(2 * 3 * 5, 12);
  const x = t(v, [2, 3, 5]).requiresGrad_();
  const ids = ops.argmax(x);
  assert.deepEqual(ids.shape, [2, 3]);
  assert.equal(ids.dtype, 'int32');
  assert.equal(ids.requiresGrad, false);
  const rows = (vals: Float32Array, n: number, cols: number) => Array.from({ length: n }, (_, r) => argmaxLoop(vals.subarray(r * cols, (r + 1) * cols)));
  assert.deepEqual(Array.from(await ids.intData()), rows(v, 6, 5));
  // A transposed view [2, 5, 3]: its rows are the columns of each [3, 5] matrix.
  const tv = new Float32Array(30);
  for (let b = 0; b < 2; b++) for (let i = 0; i < 3; i++) for (let j = 0; j < 5; j++) tv[b * 15 + j * 3 + i] = v[b * 15 + i * 5 + j]!;
  assert.deepEqual(Array.from(await ops.argmax(ops.transpose(t(v, [2, 3, 5]))).intData()), rows(tv, 10, 3));
  // A rank-1 tensor gives one id of shape [].
  const one = ops.argmax(t(Float32Array.from([1, 3, 3, -2]), [4]));
  assert.deepEqual(one.shape, []);
  assert.deepEqual(Array.from(await one.intData()), [1]);
  // Rows of zero columns give 0.
  const backend = getBackend(dev);
  const out = backend.fromHost('int32', Int32Array.from([7, 7, 7]));
  backend.argmax(backend.fromHost('float32', Float32Array.from([1])), 0, 3, 0, out);
  assert.deepEqual(Array.from((await backend.toHost(out, 0, 3)) as Int32Array), [0, 0, 0]);
});
