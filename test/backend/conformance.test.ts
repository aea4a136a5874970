/**
 * Backend conformance: every kernel against an independent float64 reference written here, on the backend
 * selected by LORAFORGE_TEST_DEVICE (cpu by default; npm run test:cuda runs the same file on the GPU).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ops from '../../src/ops/index.js';
import { getBackend } from '../../src/backend/registry.js';
import { kernels } from '../../src/ops/composed-kernels.js';
import { pickToken } from '../../src/generate/sampling.js';
import { Rng } from '../../src/tensor/random.js';
import type { DType } from '../../src/tensor/dtype.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';
import { assertClose, seededValues } from '../helpers/numeric.js';
import { erf } from '../../src/backend/cpu/gelu.js';

await prepareTestDevice();
const dev = TEST_DEVICE;
const FLOATS: { dtype: DType; tol: number }[] = [
  { dtype: 'float32', tol: 1e-5 },
  { dtype: 'bfloat16', tol: 2e-2 },
  { dtype: 'float16', tol: 2e-3 },
];

/**
 * erf for the GELU references, by a different method than the CPU kernel's: the Maclaurin series below |x| = 3
 * (alternating terms; float64 keeps about 1e-12 there) and erfc's asymptotic series above, cut at its smallest
 * term (error below 1e-8 at |x| = 3, smaller beyond). Checked against tabulated values below.
 */
function erfRef(x: number): number {
  const ax = Math.abs(x);
  let r: number;
  if (ax < 3) {
    let term = ax;
    let sum = ax;
    for (let n = 1; Math.abs(term) > 1e-30; n++) {
      term *= (-ax * ax) / n;
      sum += term / (2 * n + 1);
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    let term = 1;
    let sum = 1;
    for (let n = 1; ; n++) {
      const next = (term * -(2 * n - 1)) / (2 * ax * ax);
      if (Math.abs(next) >= Math.abs(term)) break;
      term = next;
      sum += term;
    }
    r = 1 - (Math.exp(-ax * ax) / (ax * Math.sqrt(Math.PI))) * sum;
  }
  return x < 0 ? -r : r;
}
const geluRef = (x: number) => 0.5 * x * (1 + erfRef(x / Math.SQRT2));
const geluGradRef = (x: number) => 0.5 * (1 + erfRef(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
const GELU_BETA = Math.sqrt(2 / Math.PI);
const geluTanhRef = (x: number) => 0.5 * x * (1 + Math.tanh(GELU_BETA * (x + 0.044715 * x ** 3)));
const geluTanhGradRef = (x: number) => {
  const th = Math.tanh(GELU_BETA * (x + 0.044715 * x ** 3));
  return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * GELU_BETA * (1 + 3 * 0.044715 * x * x);
};

/** erf to 20 digits (Abramowitz & Stegun's table 7.1, extended with mpmath at 30 digits). */
const ERF_TABLE: [number, number][] = [
  [0.001, 0.0011283787909692363799], [0.1, 0.1124629160182848922], [0.25, 0.27632639016823693299], [0.5, 0.52049987781304653768],
  [0.75, 0.7111556336535151316], [1, 0.84270079294971486934], [1.25, 0.92290012825645823014], [1.5, 0.96610514647531072707],
  [2, 0.99532226501895273416], [2.5, 0.99959304798255504106], [3, 0.99997790950300141456], [3.5, 0.99999925690162765859],
  [4, 0.99999998458274209972], [5, 0.99999999999846254021], [5.9, 0.9999999999999999281],
];

/** The spacing of float32 values at |v|. */
function ulp32(v: number): number {
  const a = Math.abs(v);
  return a < 2 ** -126 ? 2 ** -149 : 2 ** (Math.floor(Math.log2(a)) - 23);
}

test('the CPU backend\'s float64 erf matches tabulated values within 4 ulp; the test reference within 1e-8', () => {
  for (const [x, want] of ERF_TABLE) {
    for (const sx of [x, -x]) {
      const w = sx < 0 ? -want : want;
      const ulp = Math.max(Number.EPSILON * Math.abs(w), Number.MIN_VALUE);
      assert.ok(Math.abs(erf(sx) - w) <= 4 * ulp, `erf(${sx}) = ${erf(sx)}, want ${w}`);
      assert.ok(Math.abs(erfRef(sx) - w) <= 1e-8, `erfRef(${sx}) = ${erfRef(sx)}, want ${w}`);
    }
  }
  assert.equal(erf(0), 0);
  assert.equal(erf(Infinity), 1);
  assert.equal(erf(-Infinity), -1);
  assert.ok(Number.isNaN(erf(NaN)));
});

test('float32 gelu and geluTanh stay within float32 evaluation error of the exact functions over [-8, 8]', async () => {
  // torch evaluates both in float32, so 1 + erf(x / sqrt 2) and 1 + tanh(...) cancel for negative x: the error
  // allowed is what that evaluation can make (about 4 float32 roundings of a value near 1, times 0.5 |x|, with
  // a factor 2 to spare, plus 2 ulp of the result), not a bound relative to the tiny result.
  const n = 4001;
  const xv = Float32Array.from({ length: n }, (_, i) => -8 + (16 * i) / (n - 1));
  const x = t(xv, [n]);
  for (const [name, got, ref, slack] of [
    ['gelu', await ops.gelu(x).data(), geluRef, 2 ** -22],
    ['geluTanh', await ops.geluTanh(x).data(), geluTanhRef, 2 ** -21],
  ] as const) {
    for (let i = 0; i < n; i++) {
      const want = ref(xv[i]!);
      const bound = Math.abs(xv[i]!) * slack + 2 * ulp32(want);
      assert.ok(Math.abs(got[i]! - want) <= bound, `${name}(${xv[i]}) = ${got[i]}, want ${want} within ${bound}`);
    }
  }
  // far tails: exactly 0 below (as torch gives: 1 + erf rounds to 0) and x itself above.
  assert.deepEqual(Array.from(await ops.gelu(t(Float32Array.from([-30, 30]), [2])).data()), [-0, 30]);
});

test('activation resolves Hugging Face hidden_act names and refuses others in one sentence', async () => {
  const x = t(seededValues(16, 23, 3), [16]);
  const same = async (a: Tensor, b: Tensor) => assert.deepEqual(Array.from(await a.data()), Array.from(await b.data()));
  await same(ops.activation('silu', x), ops.silu(x));
  await same(ops.activation('swish', x), ops.silu(x));
  await same(ops.activation('gelu', x), ops.gelu(x));
  await same(ops.activation('gelu_pytorch_tanh', x), ops.geluTanh(x));
  await same(ops.activation('gelu_new', x), ops.geluTanh(x));
  await same(ops.activation('relu', x), ops.relu(x));
  assert.deepEqual([...ops.SUPPORTED_ACTIVATIONS], ['silu', 'swish', 'gelu', 'gelu_pytorch_tanh', 'gelu_new', 'relu']);
  for (const bad of ['quick_gelu', 'toString', '']) {
    assert.throws(() => ops.activation(bad, x), (e: Error) => e.message.includes(JSON.stringify(bad)) && e.message.includes('gelu_pytorch_tanh') && e.message.split('. ').length === 1);
  }
});

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

  test(`${dtype}: gelu and geluTanh, forward and backward, match float64 references`, async () => {
    const xv = await stored(seededValues(48, 21, 4), dtype);
    for (const [name, f, ref, gradRef] of [
      ['gelu', ops.gelu, geluRef, geluGradRef],
      ['geluTanh', ops.geluTanh, geluTanhRef, geluTanhGradRef],
    ] as const) {
      const x = t(xv, [6, 8], dtype).requiresGrad_();
      const y = f(x);
      assert.equal(y.dtype, dtype);
      assertClose(await y.data(), xv.map(ref), tol, name);
      await ops.sum(y).backward();
      assertClose(await x.grad!.data(), xv.map(gradRef), tol * 2, `${name} gradient`);
    }
    assert.equal(ops.activation('gelu_pytorch_tanh', t(xv, [48], dtype)).dtype, dtype);
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
  kernels(backend).adamw(p, g, m, v, 3, { ...args, step: 1 });
  kernels(backend).adamw(p, g, m, v, 3, { ...args, step: 2 });
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

test('nf4Dequantize maps high nibble first and scales per block (an odd length ends in a partial block)', async () => {
  const backend = getBackend(dev);
  const code = Float32Array.from({ length: 16 }, (_, i) => (i - 7.5) / 7.5);
  const packed = Uint8Array.from([0x0f, 0x70, 0xa5, 0x33]);
  const nibbles = [0x0, 0xf, 0x7, 0x0, 0xa, 0x5, 0x3, 0x3];
  for (const length of [8, 7]) {
    const out = backend.alloc('float32', length);
    kernels(backend).nf4Dequantize(backend.fromHost('uint8', packed), backend.fromHost('float32', Float32Array.from([2, 0.5])), backend.fromHost('float32', code), length, 4, out);
    const host = (await backend.toHost(out, 0, length)) as Float32Array;
    assertClose(host, nibbles.slice(0, length).map((nb, i) => code[nb]! * (i < 4 ? 2 : 0.5)), 1e-7, `nf4 length ${length}`);
  }
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
