import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend, UnaryOp, BinaryOp, View } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { CudaBackend, cudaDriverMissingReason } from '../../src/backend/cuda/index.js';
import { INVARIANT_ROWS } from '../../src/backend/cuda/cuda-backend.js';
import type { DeviceBuffer, HostArray } from '../../src/tensor/buffer.js';
import { bf16ArrayToF32, f16ArrayToF32, f32ArrayToBf16, f32ArrayToF16, type DType } from '../../src/tensor/dtype.js';
import { mulberry32 } from '../helpers/numeric.js';

// Every CUDA kernel against the CPU reference on random inputs. float32 results agree within 1e-5 relative
// (plus 1e-5 of the result's RMS for values near zero); bfloat16 within about one bf16 rounding step.

const missing = cudaDriverMissingReason();
const gpuOnly = missing ? `skipped: no GPU on this machine (${missing})` : false;

const cpu = new CpuBackend();
let cudaBackend: CudaBackend | null = null;
function gpu(): CudaBackend {
  cudaBackend ??= new CudaBackend('cuda', 0);
  return cudaBackend;
}

const rng = mulberry32;

function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  return out;
}

function uniform(n: number, seed: number, lo: number, hi: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

function hostOf(values: Float32Array, dtype: DType): HostArray {
  switch (dtype) {
    case 'float32':
      return values;
    case 'bfloat16':
      return f32ArrayToBf16(values);
    case 'float16':
      return f32ArrayToF16(values);
    case 'int32':
      return Int32Array.from(values, Math.trunc);
    case 'int64':
      return BigInt64Array.from(values, (v) => BigInt(Math.trunc(v)));
    case 'uint8':
      return Uint8Array.from(values);
  }
}

function f32Of(h: HostArray, dtype: DType): Float32Array {
  switch (dtype) {
    case 'float32':
      return h as Float32Array;
    case 'bfloat16':
      return bf16ArrayToF32(h as Uint16Array);
    case 'float16':
      return f16ArrayToF32(h as Uint16Array);
    case 'int64':
      return Float32Array.from(h as BigInt64Array, (v) => Number(v));
    default:
      return Float32Array.from(h as Int32Array | Uint8Array);
  }
}

/** The same data on both backends. */
interface Pair {
  readonly cpu: DeviceBuffer;
  readonly gpu: DeviceBuffer;
  readonly dtype: DType;
}

function both(dtype: DType, values: Float32Array | HostArray): Pair {
  const host = values instanceof Float32Array ? hostOf(values, dtype) : values;
  return { cpu: cpu.fromHost(dtype, host), gpu: gpu().fromHost(dtype, host), dtype };
}

function zeros(dtype: DType, n: number): Pair {
  return { cpu: cpu.alloc(dtype, n), gpu: gpu().alloc(dtype, n), dtype };
}

function on(b: Backend, p: Pair): DeviceBuffer {
  return b === cpu ? p.cpu : p.gpu;
}

const RTOL: Readonly<Record<DType, number>> = { float32: 1e-5, bfloat16: 1.6e-2, float16: 2e-3, int32: 0, int64: 0, uint8: 0 };

async function expectClose(p: Pair, label: string, rtol = RTOL[p.dtype]): Promise<void> {
  const want = f32Of(await cpu.toHost(p.cpu, 0, p.cpu.length), p.dtype);
  const got = f32Of(await gpu().toHost(p.gpu, 0, p.gpu.length), p.dtype);
  let ss = 0;
  let finite = 0;
  for (const v of want) {
    if (Number.isFinite(v)) {
      ss += v * v;
      finite++;
    }
  }
  const atol = rtol * Math.sqrt(ss / Math.max(1, finite));
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (Number.isNaN(w) || Number.isNaN(g) || !Number.isFinite(w) || !Number.isFinite(g)) {
      assert.ok(Object.is(w, g) || (Number.isNaN(w) && Number.isNaN(g)), `${label}: element ${i} is ${g} on CUDA, ${w} on CPU`);
      continue;
    }
    const excess = Math.abs(g - w) / (rtol * Math.abs(w) + atol || 1);
    if (excess > worst) {
      worst = excess;
      worstAt = i;
    }
  }
  assert.ok(worst <= 1, `${label}: element ${worstAt} is ${got[worstAt]} on CUDA, ${want[worstAt]} on CPU (rtol ${rtol}, atol ${atol.toExponential(2)})`);
}

async function expectIdentical(p: Pair, label: string): Promise<void> {
  const want = await cpu.toHost(p.cpu, 0, p.cpu.length);
  const got = await gpu().toHost(p.gpu, 0, p.gpu.length);
  assert.equal(got.constructor, want.constructor, `${label}: host array type`);
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i] && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) {
      assert.fail(`${label}: element ${i} is ${String(got[i])} on CUDA, ${String(want[i])} on CPU`);
    }
  }
}

const FLOAT_TYPES: readonly DType[] = ['float32', 'bfloat16', 'float16'];

test('fromHost and toHost round-trip every dtype bit for bit, from an offset', { skip: gpuOnly }, async () => {
  for (const dtype of ['float32', 'bfloat16', 'float16', 'int32', 'int64', 'uint8'] as const) {
    const values = dtype === 'uint8' ? uniform(37, 1, 0, 255) : randn(37, 1, 100);
    const p = both(dtype, values);
    await expectIdentical(p, dtype);
    const tail = await gpu().toHost(p.gpu, 5, 7);
    assert.deepEqual(Array.from(tail as ArrayLike<number | bigint>), Array.from((await cpu.toHost(p.cpu, 5, 7)) as ArrayLike<number | bigint>));
  }
});

test('alloc returns zeroed memory, as the CPU backend does', { skip: gpuOnly }, async () => {
  for (const dtype of ['float32', 'bfloat16', 'int64', 'uint8'] as const) await expectIdentical(zeros(dtype, 1001), `alloc ${dtype}`);
});

test('fill writes the CPU bit patterns for every dtype over a sub-range', { skip: gpuOnly }, async () => {
  const cases: [DType, number][] = [['float32', -1.25], ['bfloat16', 3.14159], ['float16', 1e-5], ['int32', -7.9], ['int64', -123456789012], ['uint8', 300], ['float32', NaN]];
  for (const [dtype, value] of cases) {
    const p = zeros(dtype, 100);
    for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.fill(on(b, p), 10, 77, value);
    await expectIdentical(p, `fill ${dtype} ${value}`);
  }
});

test('copy converts dtypes exactly through strided, permuted and broadcast views', { skip: gpuOnly }, async () => {
  const shape = [3, 4, 5];
  const srcValues = randn(3 * 4 * 5 + 7, 2, 10);
  const views: { name: string; src: (b: DeviceBuffer) => View; dst: (b: DeviceBuffer) => View; dstLen: number }[] = [
    { name: 'contiguous', src: (b) => ({ buffer: b, offset: 7, strides: [20, 5, 1] }), dst: (b) => ({ buffer: b, offset: 0, strides: [20, 5, 1] }), dstLen: 60 },
    { name: 'transposed', src: (b) => ({ buffer: b, offset: 0, strides: [1, 3, 12] }), dst: (b) => ({ buffer: b, offset: 2, strides: [20, 5, 1] }), dstLen: 62 },
    { name: 'broadcast', src: (b) => ({ buffer: b, offset: 3, strides: [0, 1, 0] }), dst: (b) => ({ buffer: b, offset: 0, strides: [1, 3, 12] }), dstLen: 60 },
  ];
  for (const [from, to] of [['float32', 'bfloat16'], ['bfloat16', 'float32'], ['float16', 'float32'], ['float32', 'float16'], ['float32', 'int32'], ['int32', 'int64'], ['bfloat16', 'bfloat16'], ['float32', 'float32'], ['int64', 'float32']] as [DType, DType][]) {
    const src = both(from, srcValues);
    for (const v of views) {
      const dst = zeros(to, v.dstLen);
      for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.copy(v.src(on(b, src)), v.dst(on(b, dst)), shape);
      await expectIdentical(dst, `copy ${from} -> ${to} ${v.name}`);
    }
  }
});

test('copy handles rank 8 with every dimension strided', { skip: gpuOnly }, async () => {
  const shape = [2, 2, 2, 2, 2, 2, 2, 3];
  const n = 384;
  const src = both('float32', randn(n * 2, 3));
  const srcStrides = [2, 4, 8, 16, 32, 64, 128, 256];
  const dst = zeros('bfloat16', n);
  const dstStrides = [192, 96, 48, 24, 12, 6, 3, 1];
  for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.copy({ buffer: on(b, src), offset: 1, strides: srcStrides }, { buffer: on(b, dst), offset: 0, strides: dstStrides }, shape);
  await expectIdentical(dst, 'rank-8 copy');
});

const UNARY_INPUTS: Readonly<Record<UnaryOp, [number, number]>> = {
  neg: [-3, 3], exp: [-10, 10], log: [0.01, 50], sqrt: [0, 50], rsqrt: [0.01, 50], sigmoid: [-12, 12], silu: [-12, 12],
  abs: [-3, 3], square: [-30, 30], recip: [0.05, 20], tanh: [-5, 5], relu: [-3, 3], gelu: [-8, 8], geluTanh: [-8, 8],
};

test('unary ops match the CPU for float32, bfloat16 and float16, from an input offset', { skip: gpuOnly }, async () => {
  for (const [op, [lo, hi]] of Object.entries(UNARY_INPUTS) as [UnaryOp, [number, number]][]) {
    for (const dtype of FLOAT_TYPES) {
      const x = both(dtype, uniform(5003, 4, lo, hi));
      const out = zeros(dtype, 5000);
      for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.unary(op, on(b, x), 3, on(b, out), 5000);
      await expectClose(out, `unary ${op} ${dtype}`);
    }
  }
});

test('binary ops broadcast through strides and mix dtypes', { skip: gpuOnly }, async () => {
  const shape = [6, 7, 33];
  const n = 6 * 7 * 33;
  for (const op of ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'siluGrad', 'geluGrad', 'geluTanhGrad', 'gt'] as BinaryOp[]) {
    for (const [ad, bd, od] of [['float32', 'float32', 'float32'], ['bfloat16', 'bfloat16', 'bfloat16'], ['bfloat16', 'float32', 'float32'], ['float16', 'float16', 'float16']] as [DType, DType, DType][]) {
      const a = both(ad, randn(n + 2, 5, 3));
      const bv = randn(7, 6, 3);
      if (op === 'div') for (let i = 0; i < bv.length; i++) bv[i] = bv[i]! + (bv[i]! >= 0 ? 0.5 : -0.5);
      const bb = both(bd, bv);
      const out = zeros(od, n);
      for (const be of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) {
        be.binary(op, { buffer: on(be, a), offset: 2, strides: [231, 33, 1] }, { buffer: on(be, bb), offset: 0, strides: [0, 1, 0] }, on(be, out), shape);
      }
      await expectClose(out, `binary ${op} ${ad}/${bd}->${od}`);
    }
  }
});

test('affine computes x * scale + bias like the CPU', { skip: gpuOnly }, async () => {
  for (const dtype of FLOAT_TYPES) {
    const x = both(dtype, randn(4097, 7));
    const out = zeros(dtype, 4096);
    for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.affine(on(b, x), 1, on(b, out), 4096, 0.1, -2.5);
    await expectClose(out, `affine ${dtype}`);
  }
});

test('reduce sum and max over rows and over the middle axis', { skip: gpuOnly }, async () => {
  const shapes: [number, number, number][] = [[37, 1000, 1], [5, 300, 70], [1, 4000, 3], [2, 3, 1]];
  for (const [outer, axis, inner] of shapes) {
    for (const op of ['sum', 'max'] as const) {
      for (const dtype of ['float32', 'bfloat16'] as const) {
        const x = both(dtype, randn(outer * axis * inner + 5, 8));
        const out = zeros('float32', outer * inner);
        for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.reduce(op, on(b, x), 5, outer, axis, inner, on(b, out));
        await expectClose(out, `reduce ${op} ${dtype} [${outer},${axis},${inner}]`);
      }
    }
  }
});

test('reduce max propagates NaN as Math.max does', { skip: gpuOnly }, async () => {
  const v = randn(64, 9);
  v[10] = NaN;
  const x = both('float32', v);
  const out = zeros('float32', 2);
  for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.reduce('max', on(b, x), 0, 2, 32, 1, on(b, out));
  await expectIdentical(out, 'max with NaN');
});

test('argmax picks the CPU index: ties to the lowest, -inf rows, NaN, bfloat16 ties, from an offset', { skip: gpuOnly }, async () => {
  for (const [rows, cols] of [[64, 128256], [5, 3001], [3, 1], [7, 33]] as const) {
    for (const dtype of FLOAT_TYPES) {
      // Coarse values (multiples of 1/8 in [-4, 4]) tie often, and more so once rounded to bfloat16.
      const v = uniform(rows * cols + 3, rows + cols, -4, 4).map((x) => Math.round(x * 8) / 8);
      const at = (r: number, i: number) => 3 + r * cols + i;
      if (rows > 1) for (let i = 0; i < cols; i++) v[at(1, i)] = -Infinity;
      if (rows > 2) v[at(2, 0)] = NaN;
      if (rows > 3) for (let i = 3; i < cols; i += 7) v[at(3, i)] = NaN;
      if (rows > 4) for (const i of [cols - 1, Math.floor(cols / 3), Math.floor(cols / 2)]) v[at(4, i)] = 5; // planted tie
      if (rows > 5) for (let i = 0; i < cols; i++) v[at(5, i)] = i % 2 ? 0 : -0;
      // Near-equal float32 values that bfloat16 rounds to one value: a tie there only.
      if (rows > 6) for (let i = 0; i < cols; i++) v[at(6, i)] = i % 97 === 11 ? 6 + (i % 5) * 1e-6 : -1;
      const x = both(dtype, v);
      const out = zeros('int32', rows);
      for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.argmax(on(b, x), 3, rows, cols, on(b, out));
      await expectIdentical(out, `argmax ${dtype} [${rows}, ${cols}]`);
    }
  }
});

/** A, B and C dtypes the matmul tests cover: cuBLAS-native pairs and the mixes that widen to float32. */
const MATMUL_DTYPE_MIXES: readonly [DType, DType, DType][] = [
  ['float32', 'float32', 'float32'], ['bfloat16', 'bfloat16', 'bfloat16'], ['bfloat16', 'bfloat16', 'float32'],
  ['float16', 'float16', 'float16'], ['bfloat16', 'float32', 'float32'], ['float32', 'float32', 'bfloat16'],
];

test('matmul matches for every transpose, batch broadcast, alpha/beta and dtype mix', { skip: gpuOnly }, async () => {
  const m = 33, n = 47, k = 65, batch = 3;
  for (const [at, bt, ct] of MATMUL_DTYPE_MIXES) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const lda = (transA ? m : k) + 3;
        const ldb = (transB ? k : n) + 1;
        const ldc = n + 2;
        const strideA = (transA ? k : m) * lda;
        const a = both(at, randn(4 + batch * strideA, 10));
        const b = both(bt, randn(k * ldb + 8, 11));
        const c = both(ct, randn(batch * m * ldc, 12));
        for (const be of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) {
          be.matmul({
            a: on(be, a), aOffset: 4, b: on(be, b), bOffset: 8, c: on(be, c), cOffset: 0, m, n, k, transA, transB, lda, ldb, ldc,
            batch, strideA, strideB: 0, strideC: m * ldc, alpha: 0.75, beta: 0.5,
          });
        }
        await expectClose(c, `matmul ${at}x${bt}->${ct} transA=${transA} transB=${transB}`);
      }
    }
  }
});

/** Index of the first element whose bits differ between two float32 or 16-bit host arrays, or -1. */
function firstBitDifference(x: HostArray, y: HostArray): number {
  const bits = (h: HostArray): Uint32Array | Uint16Array => (h instanceof Float32Array ? new Uint32Array(h.buffer, h.byteOffset, h.length) : (h as Uint16Array));
  const bx = bits(x);
  const by = bits(y);
  assert.equal(bx.length, by.length);
  for (let i = 0; i < bx.length; i++) if (bx[i] !== by[i]) return i;
  return -1;
}

test('under batchInvariant a row of an nn.Linear product has the same bits for any m, position, layout and neighbours', { skip: gpuOnly }, async () => {
  const g = gpu();
  const k = 2048;
  const n = 1536;
  const R = INVARIANT_ROWS;
  const target = randn(k, 500);
  const weights = randn(n * k, 501, 1 / Math.sqrt(k));
  // [m, the row's position, A's element offset, extra elements per row of A (lda = k + pad), A stored transposed]:
  // full chunks multiplied in place (m = 64, the first two of 130), partial ones through scratch (m = 1, 3, 65's and
  // 130's last), and full chunks that must take the scratch path too (an odd offset, padded rows, transA).
  const cases: [number, number, number, number, boolean][] = [
    [1, 0, 0, 0, false], [3, 0, 0, 0, false], [3, 2, 0, 0, false],
    [R, 0, 0, 0, false], [R, 37, 0, 0, false], [R, R - 1, 0, 0, false],
    [R + 1, 5, 0, 0, false], [R + 1, R, 0, 0, false],
    [2 * R + 2, 1, 0, 0, false], [2 * R + 2, R, 0, 0, false], [2 * R + 2, 2 * R + 1, 0, 0, false],
    [2 * R + 2, 70, 3, 0, false], [R + 1, 20, 0, 8, false], [R + 1, 33, 0, 0, true], [3, 1, 5, 0, true],
  ];
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const w = g.fromHost(dtype, hostOf(weights, dtype));
    let reference: HostArray | null = null;
    let seed = 600;
    for (const [m, pos, aOffset, pad, transA] of cases) {
      const lda = transA ? m + pad : k + pad;
      const values = randn(aOffset + (transA ? k : m) * lda, seed++);
      for (let j = 0; j < k; j++) values[aOffset + (transA ? j * lda + pos : pos * lda + j)] = target[j]!;
      const a = g.fromHost(dtype, hostOf(values, dtype));
      const c = g.allocUninitialized(dtype, m * n);
      g.batchInvariant(() => g.matmul({
        a, aOffset, b: w, bOffset: 0, c, cOffset: 0, m, n, k, transA, transB: true, lda, ldb: k, ldc: n,
        batch: 1, strideA: 0, strideB: 0, strideC: 0, alpha: 1, beta: 0,
      }));
      const row = await g.toHost(c, pos * n, n);
      if (reference === null) {
        reference = row;
      } else {
        const at = firstBitDifference(row, reference);
        const label = `${dtype}: row ${pos} of m = ${m} (A offset ${aOffset}, pad ${pad}, transA ${transA})`;
        assert.equal(at, -1, `${label} differs from m = 1 at column ${at}: ${String(row[at])} vs ${String(reference[at])}`);
      }
      g.release(a);
      g.release(c);
    }
    g.release(w);
  }
});

test('batchInvariant matmul stays within the usual tolerance of the plain cuBLAS product', { skip: gpuOnly }, async () => {
  const g = gpu();
  const m = 2 * INVARIANT_ROWS + 2;
  const k = 2048;
  const n = 1536;
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const a = g.fromHost(dtype, hostOf(randn(m * k, 700), dtype));
    const w = g.fromHost(dtype, hostOf(randn(n * k, 701, 1 / Math.sqrt(k)), dtype));
    const plain = g.allocUninitialized(dtype, m * n);
    const invariant = g.allocUninitialized(dtype, m * n);
    const args = { a, aOffset: 0, b: w, bOffset: 0, m, n, k, transA: false, transB: true, lda: k, ldb: k, ldc: n, batch: 1, strideA: 0, strideB: 0, strideC: 0, alpha: 1, beta: 0 };
    g.matmul({ ...args, c: plain, cOffset: 0 });
    g.batchInvariant(() => g.matmul({ ...args, c: invariant, cOffset: 0 }));
    const want = f32Of(await g.toHost(plain, 0, m * n), dtype);
    const got = f32Of(await g.toHost(invariant, 0, m * n), dtype);
    const rtol = RTOL[dtype];
    const atol = rtol * Math.sqrt(want.reduce((s, v) => s + v * v, 0) / want.length);
    for (let i = 0; i < want.length; i++) {
      assert.ok(Math.abs(got[i]! - want[i]!) <= rtol * Math.abs(want[i]!) + atol, `${dtype}: element ${i} is ${got[i]} batch-invariant, ${want[i]} plain`);
    }
    for (const buffer of [a, w, plain, invariant]) g.release(buffer);
  }
});

test('batchInvariant matmul matches the CPU for every transpose, batch broadcast, alpha/beta and dtype mix', { skip: gpuOnly }, async () => {
  // m = 70: one full chunk and a partial one per batch item; the padded leading dimensions send both through scratch.
  const m = INVARIANT_ROWS + 6, n = 47, k = 65, batch = 3;
  for (const [at, bt, ct] of MATMUL_DTYPE_MIXES) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const padded of [false, true]) {
          const lda = (transA ? m : k) + (padded ? 3 : 0);
          const ldb = (transB ? k : n) + 1;
          const ldc = n + (padded ? 2 : 0);
          const strideA = (transA ? k : m) * lda;
          const aOffset = padded ? 4 : 0;
          const a = both(at, randn(aOffset + batch * strideA, 20));
          const b = both(bt, randn(k * ldb + 8, 21));
          const c = both(ct, randn(batch * m * ldc, 22));
          for (const be of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) {
            const run = (): void => be.matmul({
              a: on(be, a), aOffset, b: on(be, b), bOffset: 8, c: on(be, c), cOffset: 0, m, n, k, transA, transB, lda, ldb, ldc,
              batch, strideA, strideB: 0, strideC: m * ldc, alpha: 0.75, beta: 0.5,
            });
            if (be === cpu) run();
            else gpu().batchInvariant(run);
          }
          await expectClose(c, `batch-invariant matmul ${at}x${bt}->${ct} transA=${transA} transB=${transB} padded=${padded}`);
        }
      }
    }
  }
});

test('batchInvariant calls nest and restore the previous mode, also when fn throws', { skip: gpuOnly }, () => {
  const g = gpu();
  assert.equal(g.batchInvariantActive, false);
  const seen = g.batchInvariant(() => {
    const inner = g.batchInvariant(() => g.batchInvariantActive);
    return [inner, g.batchInvariantActive];
  });
  assert.deepEqual(seen, [true, true]);
  assert.equal(g.batchInvariantActive, false);
  assert.throws(() => g.batchInvariant(() => {
    throw new Error('inside');
  }), /inside/);
  assert.equal(g.batchInvariantActive, false, 'an exception restores the mode');
  g.batchInvariant(() => {
    assert.throws(() => g.batchInvariant(() => {
      throw new Error('nested');
    }), /nested/);
    assert.equal(g.batchInvariantActive, true, 'a nested exception restores the outer mode');
  });
  assert.equal(g.batchInvariantActive, false);
});

test('softmax and its backward match, including a row of -inf', { skip: gpuOnly }, async () => {
  for (const [rows, cols] of [[17, 100], [3, 33000]] as [number, number][]) {
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const v = randn(rows * cols, 13, 4);
      for (let j = 0; j < cols; j++) v[cols + j] = -Infinity;
      const x = both(dtype, v);
      const y = zeros(dtype, rows * cols);
      for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.softmax(on(b, x), rows, cols, on(b, y));
      await expectClose(y, `softmax ${dtype} ${rows}x${cols}`);
      const yRef = both(dtype, f32Of(await cpu.toHost(y.cpu, 0, rows * cols), dtype));
      const dy = both(dtype, randn(rows * cols, 14));
      const dx = zeros(dtype, rows * cols);
      for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.softmaxBackward(on(b, yRef), on(b, dy), rows, cols, on(b, dx));
      await expectClose(dx, `softmaxBackward ${dtype} ${rows}x${cols}`);
    }
  }
});

test('rmsNorm forward (with the bf16 round before the weight) and backward with dweight', { skip: gpuOnly }, async () => {
  for (const [rows, cols] of [[64, 256], [300, 2048], [3, 5000]] as [number, number][]) {
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const x = both(dtype, randn(rows * cols, 15, 2));
      const w = both(dtype, uniform(cols, 16, 0.5, 1.5));
      const y = zeros(dtype, rows * cols);
      const rstd = zeros('float32', rows);
      for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.rmsNorm(on(b, x), on(b, w), rows, cols, 1e-6, on(b, y), on(b, rstd));
      await expectClose(rstd, `rmsNorm rstd ${dtype}`);
      await expectClose(y, `rmsNorm ${dtype} ${rows}x${cols}`);
      const dy = both(dtype, randn(rows * cols, 17));
      const dx = zeros(dtype, rows * cols);
      const dw = zeros('float32', cols);
      const rstdRef = both('float32', (await cpu.toHost(rstd.cpu, 0, rows)) as Float32Array);
      for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.rmsNormBackward(on(b, x), on(b, w), on(b, rstdRef), on(b, dy), rows, cols, on(b, dx), on(b, dw));
      await expectClose(dx, `rmsNormBackward dx ${dtype}`);
      await expectClose(dw, `rmsNormBackward dweight ${dtype}`);
      const dx2 = zeros(dtype, rows * cols);
      for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.rmsNormBackward(on(b, x), on(b, w), on(b, rstdRef), on(b, dy), rows, cols, on(b, dx2), null);
      await expectClose(dx2, `rmsNormBackward without dweight ${dtype}`);
    }
  }
});

test('rope forward and inverse, shared and per-batch tables, in place', { skip: gpuOnly }, async () => {
  const batch = 2, seq = 7, heads = 3, headDim = 64;
  const n = batch * seq * heads * headDim;
  for (const tableBatchStride of [0, seq * headDim + 5]) {
    const tableLen = tableBatchStride === 0 ? seq * headDim : batch * tableBatchStride;
    const angles = uniform(tableLen, 18, -6, 6);
    const cos = both('float32', angles.map(Math.cos));
    const sin = both('float32', angles.map(Math.sin));
    for (const dtype of ['float32', 'bfloat16'] as const) {
      for (const inverse of [false, true]) {
        const x = both(dtype, randn(n, 19));
        for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.rope(on(b, x), on(b, cos), on(b, sin), tableBatchStride, batch, seq, heads, headDim, on(b, x), inverse);
        await expectClose(x, `rope ${dtype} inverse=${inverse} stride=${tableBatchStride}`);
      }
    }
  }
});

test('embedding gathers rows exactly and its backward accumulates repeated ids', { skip: gpuOnly }, async () => {
  const vocab = 50, dim = 96, count = 40;
  const ids = both('int32', Int32Array.from({ length: count }, (_, i) => (i * 7) % 13));
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const table = both(dtype, randn(vocab * dim, 20));
    const out = zeros(dtype, count * dim);
    for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.embedding(on(b, ids), on(b, table), count, dim, on(b, out));
    await expectIdentical(out, `embedding ${dtype}`);
    const dy = both(dtype, randn(count * dim, 21));
    const dtable = zeros(dtype, vocab * dim);
    for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.embeddingBackward(on(b, ids), on(b, dy), count, dim, on(b, dtable));
    await expectClose(dtable, `embeddingBackward ${dtype}`);
  }
});

test('an out-of-range token id is reported at the next synchronisation', { skip: gpuOnly }, async () => {
  const ids = gpu().fromHost('int32', Int32Array.from([1, 99, 2]));
  const table = gpu().alloc('float32', 10 * 4);
  const out = gpu().alloc('float32', 3 * 4);
  gpu().embedding(ids, table, 3, 4, out);
  await assert.rejects(gpu().synchronize(), /Token id 99 is outside the embedding table of 10 rows/);
  await gpu().synchronize();
});

test('crossEntropy and its backward match over a large vocabulary with ignored rows', { skip: gpuOnly }, async () => {
  const rows = 12, vocab = 50_257, ignore = -100;
  const labels = both('int32', Int32Array.from({ length: rows }, (_, i) => (i % 5 === 2 ? ignore : (i * 7919) % vocab)));
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const logits = both(dtype, randn(rows * vocab, 22, 3));
    const losses = zeros('float32', rows);
    const lse = zeros('float32', rows);
    for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.crossEntropy(on(b, logits), on(b, labels), rows, vocab, ignore, on(b, losses), on(b, lse));
    await expectClose(lse, `crossEntropy lse ${dtype}`);
    await expectClose(losses, `crossEntropy losses ${dtype}`);
    const scale = both('float32', uniform(rows, 23, 0.1, 1));
    const lseRef = both('float32', (await cpu.toHost(lse.cpu, 0, rows)) as Float32Array);
    const dlogits = zeros(dtype, rows * vocab);
    for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.crossEntropyBackward(on(b, logits), on(b, lseRef), on(b, labels), on(b, scale), rows, vocab, ignore, on(b, dlogits));
    await expectClose(dlogits, `crossEntropyBackward ${dtype}`);
  }
});

test('a label outside the vocabulary is reported at the next synchronisation', { skip: gpuOnly }, async () => {
  const logits = gpu().fromHost('float32', randn(2 * 10, 24));
  const labels = gpu().fromHost('int32', Int32Array.from([3, 10]));
  const losses = gpu().alloc('float32', 2);
  const lse = gpu().alloc('float32', 2);
  gpu().crossEntropy(logits, labels, 2, 10, -100, losses, lse);
  await assert.rejects(gpu().synchronize(), /Label 10 is outside the vocabulary of 10; use -100/);
});

test('adamw reproduces the CPU (torch) arithmetic bit for bit over several steps', { skip: gpuOnly }, async () => {
  const n = 10_001;
  for (const beta1 of [0.9, 0.3]) {
    const param = both('float32', randn(n, 25));
    const m = zeros('float32', n);
    const v = zeros('float32', n);
    for (let step = 1; step <= 3; step++) {
      const grad = both('float32', randn(n, 26 + step, 0.1));
      const args = { lr: 1e-3, beta1, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step };
      for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.adamw(on(b, param), on(b, grad), on(b, m), on(b, v), n, args);
    }
    await expectIdentical(param, `adamw param beta1=${beta1}`);
    await expectIdentical(m, `adamw exp_avg beta1=${beta1}`);
    await expectIdentical(v, `adamw exp_avg_sq beta1=${beta1}`);
  }
});

test('adamw updates a bfloat16 parameter from a bfloat16 gradient like the CPU', { skip: gpuOnly }, async () => {
  const n = 4096;
  const param = both('bfloat16', randn(n, 30));
  const grad = both('bfloat16', randn(n, 31, 0.1));
  const m = zeros('float32', n);
  const v = zeros('float32', n);
  for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.adamw(on(b, param), on(b, grad), on(b, m), on(b, v), n, { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 });
  await expectIdentical(param, 'adamw bf16 param');
  await expectIdentical(m, 'adamw bf16 exp_avg');
});

test('nf4Dequantize decodes both nibbles with per-block absmax exactly', { skip: gpuOnly }, async () => {
  // 64 * 9 + 3 takes the generic path; 64 * 40 the vectorized bfloat16 path (whole groups of 16).
  for (const length of [64 * 9 + 3, 64 * 40]) {
    const blocksize = 64;
    const packed = both('uint8', Uint8Array.from(uniform(Math.ceil(length / 2), 32, 0, 256), Math.floor));
    const absmax = both('float32', uniform(Math.ceil(length / blocksize), 33, 0.01, 2));
    const code = both('float32', Float32Array.from({ length: 16 }, (_, i) => (i - 7.5) / 7.5));
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const out = zeros(dtype, length);
      for (const b of [cpu, gpu()] as (CpuBackend | CudaBackend)[]) b.nf4Dequantize(on(b, packed), on(b, absmax), on(b, code), length, blocksize, on(b, out));
      await expectIdentical(out, `nf4Dequantize ${dtype} of ${length}`);
    }
  }
});

test('the caching allocator reuses released blocks and tracks peak usage', { skip: gpuOnly }, async () => {
  const g = gpu();
  await g.synchronize();
  g.emptyCache();
  g.resetPeakMemory();
  const before = g.memoryStats();
  const a = g.alloc('float32', 1 << 20);
  const afterAlloc = g.memoryStats();
  assert.equal(afterAlloc.inUse - before.inUse, 4 << 20);
  g.release(a);
  const b = g.alloc('bfloat16', 1 << 21);
  const afterReuse = g.memoryStats();
  assert.equal(afterReuse.driverAllocations, afterAlloc.driverAllocations, 'a block of the same size class is reused');
  assert.equal(afterReuse.peak - before.inUse, 4 << 20);
  g.release(b);
  g.emptyCache();
  assert.equal(g.memoryStats().reserved, g.memoryStats().inUse);
});

test('without a CUDA driver, asking for the backend explains the fix in one sentence', { skip: missing ? false : 'a CUDA driver is present' }, () => {
  assert.throws(() => new CudaBackend('cuda', 0), {
    name: 'CudaUnavailableError',
    message: '--device cuda was requested but no CUDA driver was found (libcuda.so.1); install the NVIDIA driver or use --device cpu.',
  });
});
