import type { DeviceBuffer, HostArray } from '../../tensor/buffer.js';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, roundToDType, type DType } from '../../tensor/dtype.js';
import type {
  AdamWArgs, AttentionArgs, AttentionBackwardArgs, Backend, BinaryOp, GatedActivation, GatedArgs, MatmulArgs, MultiLoraArgs, PagedAttentionArgs, PagedKvWriteArgs, ReduceOp, UnaryOp, View,
} from '../backend.js';
import { cpuAttention, cpuAttentionBackward } from './attention.js';
import { HostPool } from './host-pool.js';
import { ModeFlag } from '../mode-flag.js';
import { asCpu, commitF32, CpuBuffer, readF32, readI32, writableF32 } from './cpu-buffer.js';
import { sgemm, sgemmBatchInvariant } from './gemm.js';
import { cpuMultiLora } from './multi-lora.js';
import { cpuPagedAttention, cpuPagedKvWrite } from './paged-kv.js';
import { gelu, geluGrad, geluTanh, geluTanhGrad } from './gelu.js';

const f = Math.fround;

const GATED_GRAD: Readonly<Record<GatedActivation, BinaryOp>> = { silu: 'siluGrad', gelu: 'geluGrad', geluTanh: 'geluTanhGrad' };

function unaryFn(op: UnaryOp): (x: number) => number {
  switch (op) {
    case 'neg':
      return (x) => -x;
    case 'exp':
      return Math.exp;
    case 'log':
      return Math.log;
    case 'sqrt':
      return Math.sqrt;
    case 'rsqrt':
      return (x) => 1 / Math.sqrt(x);
    case 'sigmoid':
      return (x) => 1 / (1 + Math.exp(-x));
    case 'silu':
      return (x) => x / (1 + Math.exp(-x));
    case 'abs':
      return Math.abs;
    case 'square':
      return (x) => x * x;
    case 'recip':
      return (x) => 1 / x;
    case 'tanh':
      return Math.tanh;
    case 'relu':
      return (x) => (x > 0 ? x : 0);
    case 'gelu':
      return gelu;
    case 'geluTanh':
      return geluTanh;
  }
}

function binaryFn(op: BinaryOp): (a: number, b: number) => number {
  switch (op) {
    case 'add':
      return (a, b) => a + b;
    case 'sub':
      return (a, b) => a - b;
    case 'mul':
      return (a, b) => a * b;
    case 'div':
      return (a, b) => a / b;
    case 'maximum':
      return (a, b) => (a >= b || Number.isNaN(a) ? a : b);
    case 'minimum':
      return (a, b) => (a <= b || Number.isNaN(a) ? a : b);
    case 'gt':
      return (a, b) => (a > b ? 1 : 0);
    case 'siluGrad':
      // d/da silu(a) * b: sigmoid(a) * (1 + a * (1 - sigmoid(a))) * b
      return (a, b) => {
        const s = 1 / (1 + Math.exp(-a));
        return s * (1 + a * (1 - s)) * b;
      };
    case 'geluGrad':
      return geluGrad;
    case 'geluTanhGrad':
      return geluTanhGrad;
  }
}

/** Element reader for any dtype (used on strided and mixed-dtype paths). */
function getter(b: DeviceBuffer): (i: number) => number {
  const c = asCpu(b);
  switch (c.dtype) {
    case 'float32':
    case 'int32':
    case 'uint8': {
      const d = c.data as Float32Array | Int32Array | Uint8Array;
      return (i) => d[i]!;
    }
    case 'bfloat16': {
      const d = c.data as Uint16Array;
      return (i) => bf16BitsToF32(d[i]!);
    }
    case 'float16': {
      const d = c.data as Uint16Array;
      return (i) => f16BitsToF32(d[i]!);
    }
    case 'int64': {
      const d = c.data as BigInt64Array;
      return (i) => Number(d[i]!);
    }
  }
}

function setter(b: DeviceBuffer): (i: number, v: number) => void {
  const c = asCpu(b);
  switch (c.dtype) {
    case 'float32':
    case 'uint8': {
      const d = c.data as Float32Array | Uint8Array;
      return (i, v) => {
        d[i] = v;
      };
    }
    case 'int32': {
      const d = c.data as Int32Array;
      return (i, v) => {
        d[i] = Math.trunc(v);
      };
    }
    case 'bfloat16': {
      const d = c.data as Uint16Array;
      return (i, v) => {
        d[i] = f32ToBf16Bits(v);
      };
    }
    case 'float16': {
      const d = c.data as Uint16Array;
      return (i, v) => {
        d[i] = f32ToF16Bits(v);
      };
    }
    case 'int64': {
      const d = c.data as BigInt64Array;
      return (i, v) => {
        d[i] = BigInt(Math.trunc(v));
      };
    }
  }
}

/**
 * Visits every index of `shape` in row-major order, calling visit(srcIndex, dstIndex, count) once per
 * innermost run so the caller's inner loop stays tight.
 */
function forEachRun(
  shape: readonly number[],
  aOffset: number,
  aStrides: readonly number[],
  bOffset: number,
  bStrides: readonly number[],
  visit: (a: number, b: number, n: number, aStep: number, bStep: number) => void,
): void {
  const rank = shape.length;
  if (rank === 0) {
    visit(aOffset, bOffset, 1, 0, 0);
    return;
  }
  const inner = shape[rank - 1]!;
  const aStep = aStrides[rank - 1]!;
  const bStep = bStrides[rank - 1]!;
  const outer = shape.slice(0, rank - 1);
  const total = outer.reduce((p, d) => p * d, 1);
  if (total === 0 || inner === 0) return;
  const idx = new Array<number>(rank - 1).fill(0);
  let a = aOffset;
  let b = bOffset;
  for (let r = 0; r < total; r++) {
    visit(a, b, inner, aStep, bStep);
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]!++;
      a += aStrides[d]!;
      b += bStrides[d]!;
      if (idx[d]! < outer[d]!) break;
      a -= aStrides[d]! * outer[d]!;
      b -= bStrides[d]! * outer[d]!;
      idx[d] = 0;
    }
  }
}

/** Released arrays kept for reuse, at most this many bytes (LORAFORGE_CPU_POOL_MIB overrides; 0 disables). */
const POOL_BYTES = Number(globalThis.process?.env?.['LORAFORGE_CPU_POOL_MIB'] ?? 1024) * 2 ** 20;

export class CpuBackend implements Backend {
  /** `device`: the name it registers under ('cpu'; tests register a second one under another name). */
  constructor(readonly device: string = 'cpu') {}
  readonly pool = new HostPool(POOL_BYTES);
  /** Inside batchInvariant(): matmul through sgemmBatchInvariant, multiLora row by row, attention's block products on the built-in kernel. */
  private readonly invariant = new ModeFlag();

  alloc(dtype: DType, length: number): DeviceBuffer {
    const { data, reused } = this.pool.take(dtype, length);
    if (reused) new Uint8Array(data.buffer, data.byteOffset, data.byteLength).fill(0);
    return new CpuBuffer(dtype, length, data, this.device);
  }

  allocUninitialized(dtype: DType, length: number): DeviceBuffer {
    return new CpuBuffer(dtype, length, this.pool.take(dtype, length).data, this.device);
  }

  fromHost(dtype: DType, data: HostArray): DeviceBuffer {
    const buf = this.allocUninitialized(dtype, data.length) as CpuBuffer;
    (buf.data as { set(a: ArrayLike<number | bigint>): void }).set(data as ArrayLike<number | bigint>);
    return buf;
  }

  async toHost(buffer: DeviceBuffer, offset: number, length: number): Promise<HostArray> {
    return this.toHostNow(buffer, offset, length);
  }

  toHostNow(buffer: DeviceBuffer, offset: number, length: number): HostArray {
    const c = asCpu(buffer);
    return c.data.slice(offset, offset + length) as HostArray;
  }

  /** The last tensor over this buffer was disposed: its array goes back to the pool. */
  release(buffer: DeviceBuffer): void {
    const c = asCpu(buffer);
    this.pool.give(c.dtype, c.data);
  }

  async synchronize(): Promise<void> {}

  fill(out: DeviceBuffer, outOffset: number, length: number, value: number): void {
    const c = asCpu(out);
    switch (c.dtype) {
      case 'bfloat16':
        (c.data as Uint16Array).fill(f32ToBf16Bits(value), outOffset, outOffset + length);
        return;
      case 'float16':
        (c.data as Uint16Array).fill(f32ToF16Bits(value), outOffset, outOffset + length);
        return;
      case 'int64':
        (c.data as BigInt64Array).fill(BigInt(Math.trunc(value)), outOffset, outOffset + length);
        return;
      default:
        (c.data as Float32Array).fill(value, outOffset, outOffset + length);
    }
  }

  copy(src: View, dst: View, shape: readonly number[]): void {
    const s = asCpu(src.buffer);
    const d = asCpu(dst.buffer);
    if (s.dtype === d.dtype) {
      const sd = s.data as Float32Array;
      const dd = d.data as Float32Array;
      forEachRun(shape, src.offset, src.strides, dst.offset, dst.strides, (a, b, n, as, bs) => {
        if (as === 1 && bs === 1) dd.set(sd.subarray(a, a + n), b);
        else for (let i = 0; i < n; i++) dd[b + i * bs] = sd[a + i * as]!;
      });
      return;
    }
    const get = getter(s);
    const set = setter(d);
    forEachRun(shape, src.offset, src.strides, dst.offset, dst.strides, (a, b, n, as, bs) => {
      for (let i = 0; i < n; i++) set(b + i * bs, get(a + i * as));
    });
  }

  unary(op: UnaryOp, x: DeviceBuffer, xOffset: number, out: DeviceBuffer, length: number): void {
    const fn = unaryFn(op);
    const xs = readF32(x, xOffset, length);
    const ys = writableF32(out, 0, length);
    for (let i = 0; i < length; i++) ys[i] = fn(xs[i]!);
    commitF32(out, 0, ys);
  }

  gated(args: GatedArgs, out: DeviceBuffer): void {
    const { rows, cols, gate, up } = args;
    const act = unaryFn(args.act);
    const dt = gate.buffer.dtype;
    const ys = writableF32(out, 0, rows * cols);
    for (let r = 0; r < rows; r++) {
      const g = readF32(gate.buffer, gate.offset + r * gate.rowStride, cols);
      const u = readF32(up.buffer, up.offset + r * up.rowStride, cols);
      for (let c = 0; c < cols; c++) ys[r * cols + c] = roundToDType(act(g[c]!), dt) * u[c]!;
    }
    commitF32(out, 0, ys);
  }

  gatedBackward(args: GatedArgs, dy: DeviceBuffer, dgate: DeviceBuffer | null, dup: DeviceBuffer | null): void {
    const { rows, cols, gate, up } = args;
    const act = unaryFn(args.act);
    const grad = binaryFn(GATED_GRAD[args.act]);
    const dt = gate.buffer.dtype;
    const d = readF32(dy, 0, rows * cols);
    const dg = dgate ? writableF32(dgate, 0, rows * cols) : null;
    const du = dup ? writableF32(dup, 0, rows * cols) : null;
    for (let r = 0; r < rows; r++) {
      const g = readF32(gate.buffer, gate.offset + r * gate.rowStride, cols);
      const u = readF32(up.buffer, up.offset + r * up.rowStride, cols);
      for (let c = 0; c < cols; c++) {
        const i = r * cols + c;
        if (du) du[i] = d[i]! * roundToDType(act(g[c]!), dt);
        if (dg) dg[i] = grad(g[c]!, roundToDType(d[i]! * u[c]!, dt));
      }
    }
    if (dgate && dg) commitF32(dgate, 0, dg);
    if (dup && du) commitF32(dup, 0, du);
  }

  binary(op: BinaryOp, a: View, b: View, out: DeviceBuffer, shape: readonly number[]): void {
    const fn = binaryFn(op);
    const n = shape.reduce((p, d) => p * d, 1);
    const ys = writableF32(out, 0, n);
    const ac = asCpu(a.buffer);
    const bc = asCpu(b.buffer);
    const outStrides = new Array<number>(shape.length);
    let s = 1;
    for (let i = shape.length - 1; i >= 0; i--) {
      outStrides[i] = s;
      s *= shape[i]!;
    }
    if (ac.dtype === 'float32' && bc.dtype === 'float32') {
      const ad = ac.data as Float32Array;
      const bd = bc.data as Float32Array;
      // Walk a and b together; the output index advances densely.
      let o = 0;
      forEachRun(shape, a.offset, a.strides, b.offset, b.strides, (ai, bi, len, as, bs) => {
        if (op === 'add' && as === 1 && bs === 1) {
          for (let i = 0; i < len; i++) ys[o + i] = ad[ai + i]! + bd[bi + i]!;
        } else if (op === 'mul' && as === 1) {
          if (bs === 0) {
            const bv = bd[bi]!;
            for (let i = 0; i < len; i++) ys[o + i] = ad[ai + i]! * bv;
          } else for (let i = 0; i < len; i++) ys[o + i] = ad[ai + i]! * bd[bi + i * bs]!;
        } else {
          for (let i = 0; i < len; i++) ys[o + i] = fn(ad[ai + i * as]!, bd[bi + i * bs]!);
        }
        o += len;
      });
    } else {
      const ga = getter(ac);
      const gb = getter(bc);
      let o = 0;
      forEachRun(shape, a.offset, a.strides, b.offset, b.strides, (ai, bi, len, as, bs) => {
        for (let i = 0; i < len; i++) ys[o + i] = fn(ga(ai + i * as), gb(bi + i * bs));
        o += len;
      });
    }
    commitF32(out, 0, ys);
  }

  affine(x: DeviceBuffer, xOffset: number, out: DeviceBuffer, length: number, scale: number, bias: number): void {
    const xs = readF32(x, xOffset, length);
    const ys = writableF32(out, 0, length);
    for (let i = 0; i < length; i++) ys[i] = xs[i]! * scale + bias;
    commitF32(out, 0, ys);
  }

  reduce(op: ReduceOp, x: DeviceBuffer, xOffset: number, outer: number, axis: number, inner: number, out: DeviceBuffer): void {
    const xs = readF32(x, xOffset, outer * axis * inner);
    const ys = writableF32(out, 0, outer * inner);
    for (let o = 0; o < outer; o++) {
      const base = o * axis * inner;
      if (inner === 1) {
        let acc = op === 'sum' ? 0 : -Infinity;
        if (op === 'sum') for (let a = 0; a < axis; a++) acc += xs[base + a]!;
        else for (let a = 0; a < axis; a++) acc = Math.max(acc, xs[base + a]!);
        ys[o] = acc;
        continue;
      }
      const acc = new Float64Array(inner).fill(op === 'sum' ? 0 : -Infinity);
      for (let a = 0; a < axis; a++) {
        const row = base + a * inner;
        if (op === 'sum') for (let i = 0; i < inner; i++) acc[i]! += xs[row + i]!;
        else for (let i = 0; i < inner; i++) acc[i] = Math.max(acc[i]!, xs[row + i]!);
      }
      for (let i = 0; i < inner; i++) ys[o * inner + i] = acc[i]!;
    }
    commitF32(out, 0, ys);
  }

  argmax(x: DeviceBuffer, xOffset: number, rows: number, cols: number, out: DeviceBuffer): void {
    const o = asCpu(out);
    if (o.dtype !== 'int32') throw new Error(`argmax writes int32 indices, got a ${o.dtype} output.`);
    if (rows > o.length) throw new Error(`argmax output: ${rows} rows do not fit a buffer of ${o.length}.`);
    if (xOffset < 0 || xOffset + rows * cols > x.length) throw new Error(`argmax input: elements [${xOffset}, ${xOffset + rows * cols}) lie outside a buffer of ${x.length}.`);
    const ids = o.data as Int32Array;
    for (let r = 0; r < rows; r++) {
      // Row by row, so a bfloat16/float16 input is widened one row at a time; the scan is sampling.ts argmax's.
      const xs = readF32(x, xOffset + r * cols, cols);
      let best = 0;
      for (let i = 1; i < cols; i++) if (xs[i]! > xs[best]!) best = i;
      ids[r] = best;
    }
  }

  matmul(p: MatmulArgs): void {
    const aRows = p.transA ? p.k : p.m;
    const bRows = p.transB ? p.n : p.k;
    const spanA = (p.batch - 1) * p.strideA + (aRows - 1) * p.lda + (p.transA ? p.m : p.k);
    const spanB = (p.batch - 1) * p.strideB + (bRows - 1) * p.ldb + (p.transB ? p.k : p.n);
    const spanC = (p.batch - 1) * p.strideC + (p.m - 1) * p.ldc + p.n;
    const a = readF32(p.a, p.aOffset, spanA);
    const b = readF32(p.b, p.bOffset, spanB);
    const cIsF32 = asCpu(p.c).dtype === 'float32';
    const c = cIsF32 ? writableF32(p.c, p.cOffset, spanC) : p.beta === 0 ? new Float32Array(spanC) : readF32(p.c, p.cOffset, spanC);
    (this.invariant.active ? sgemmBatchInvariant : sgemm)({
      m: p.m, n: p.n, k: p.k, transA: p.transA, transB: p.transB,
      a, aOffset: 0, lda: p.lda, b, bOffset: 0, ldb: p.ldb, c, cOffset: 0, ldc: p.ldc,
      alpha: p.alpha, beta: p.beta, batch: p.batch, strideA: p.strideA, strideB: p.strideB, strideC: p.strideC,
    });
    if (!cIsF32) commitF32(p.c, p.cOffset, c);
  }

  batchInvariant<T>(fn: () => T): T {
    return this.invariant.run(fn);
  }

  multiLora(p: MultiLoraArgs): void {
    cpuMultiLora(p, this.invariant.active);
  }

  softmax(x: DeviceBuffer, rows: number, cols: number, out: DeviceBuffer): void {
    const xs = readF32(x, 0, rows * cols);
    const ys = writableF32(out, 0, rows * cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let mx = -Infinity;
      for (let i = 0; i < cols; i++) mx = Math.max(mx, xs[o + i]!);
      if (mx === -Infinity) {
        ys.fill(0, o, o + cols);
        continue;
      }
      let sum = 0;
      for (let i = 0; i < cols; i++) {
        const e = Math.exp(xs[o + i]! - mx);
        ys[o + i] = e;
        sum += e;
      }
      const inv = 1 / sum;
      for (let i = 0; i < cols; i++) ys[o + i] = ys[o + i]! * inv;
    }
    commitF32(out, 0, ys);
  }

  softmaxBackward(y: DeviceBuffer, dy: DeviceBuffer, rows: number, cols: number, dx: DeviceBuffer): void {
    const ys = readF32(y, 0, rows * cols);
    const gs = readF32(dy, 0, rows * cols);
    const out = writableF32(dx, 0, rows * cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let dot = 0;
      for (let i = 0; i < cols; i++) dot += ys[o + i]! * gs[o + i]!;
      for (let i = 0; i < cols; i++) out[o + i] = ys[o + i]! * (gs[o + i]! - dot);
    }
    commitF32(dx, 0, out);
  }

  rmsNorm(x: DeviceBuffer, weight: DeviceBuffer, rows: number, cols: number, eps: number, out: DeviceBuffer, rstd: DeviceBuffer): void {
    const xs = readF32(x, 0, rows * cols);
    const w = readF32(weight, 0, cols);
    const ys = writableF32(out, 0, rows * cols);
    const rs = writableF32(rstd, 0, rows);
    const lowPrecision = asCpu(x).dtype !== 'float32';
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let ss = 0;
      for (let i = 0; i < cols; i++) ss += xs[o + i]! * xs[o + i]!;
      const inv = f(1 / Math.sqrt(f(ss / cols) + eps));
      rs[r] = inv;
      // transformers normalises in float32, casts back to the input dtype, then multiplies by the weight.
      if (lowPrecision) for (let i = 0; i < cols; i++) ys[o + i] = w[i]! * bf16BitsToF32(f32ToBf16Bits(xs[o + i]! * inv));
      else for (let i = 0; i < cols; i++) ys[o + i] = w[i]! * f(xs[o + i]! * inv);
    }
    commitF32(out, 0, ys);
    commitF32(rstd, 0, rs);
  }

  rmsNormBackward(x: DeviceBuffer, weight: DeviceBuffer, rstd: DeviceBuffer, dy: DeviceBuffer, rows: number, cols: number, dx: DeviceBuffer, dweight: DeviceBuffer | null): void {
    const xs = readF32(x, 0, rows * cols);
    const w = readF32(weight, 0, cols);
    const rs = readF32(rstd, 0, rows);
    const gs = readF32(dy, 0, rows * cols);
    const out = writableF32(dx, 0, rows * cols);
    const dw = dweight ? new Float64Array(cols) : null;
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      const inv = rs[r]!;
      let dot = 0;
      for (let i = 0; i < cols; i++) dot += w[i]! * gs[o + i]! * xs[o + i]!;
      const k = (inv * inv * inv * dot) / cols;
      for (let i = 0; i < cols; i++) out[o + i] = inv * w[i]! * gs[o + i]! - k * xs[o + i]!;
      if (dw) for (let i = 0; i < cols; i++) dw[i]! += gs[o + i]! * xs[o + i]! * inv;
    }
    commitF32(dx, 0, out);
    if (dweight && dw) commitF32(dweight, 0, Float32Array.from(dw));
  }

  rope(
    x: DeviceBuffer, cos: DeviceBuffer, sin: DeviceBuffer, tableBatchStride: number, batch: number, seq: number, heads: number, headDim: number,
    out: DeviceBuffer, inverse: boolean, rotaryDim = headDim,
  ): void {
    const n = batch * seq * heads * headDim;
    const xs = readF32(x, 0, n);
    const tableLen = tableBatchStride === 0 ? seq * rotaryDim : (batch - 1) * tableBatchStride + seq * rotaryDim;
    const c = readF32(cos, 0, tableLen);
    const s = readF32(sin, 0, tableLen);
    // In place is safe: each (i, i+half) pair is read before either is written.
    const ys = writableF32(out, 0, n);
    const half = rotaryDim / 2;
    for (let b = 0; b < batch; b++) {
      for (let t = 0; t < seq; t++) {
        const tb = b * tableBatchStride + t * rotaryDim;
        for (let h = 0; h < heads; h++) {
          const o = ((b * seq + t) * heads + h) * headDim;
          // The dimensions past rotaryDim pass through (ys is a scratch array for 16-bit outputs).
          for (let i = rotaryDim; i < headDim; i++) ys[o + i] = xs[o + i]!;
          for (let i = 0; i < half; i++) {
            const x1 = xs[o + i]!;
            const x2 = xs[o + i + half]!;
            const c1 = c[tb + i]!, c2 = c[tb + i + half]!;
            const s1 = s[tb + i]!, s2 = s[tb + i + half]!;
            if (!inverse) {
              ys[o + i] = f(f(x1 * c1) - f(x2 * s1));
              ys[o + i + half] = f(f(x2 * c2) + f(x1 * s2));
            } else {
              ys[o + i] = x1 * c1 + x2 * s2;
              ys[o + i + half] = x2 * c2 - x1 * s1;
            }
          }
        }
      }
    }
    commitF32(out, 0, ys);
  }

  embedding(ids: DeviceBuffer, table: DeviceBuffer, count: number, dim: number, out: DeviceBuffer): void {
    const idx = readI32(ids, 0, count);
    const t = asCpu(table);
    const o = asCpu(out);
    const rowsInTable = t.length / dim;
    for (let i = 0; i < count; i++) {
      const id = idx[i]!;
      if (id < 0 || id >= rowsInTable) throw new Error(`Token id ${id} is outside the embedding table of ${rowsInTable} rows; check the tokenizer matches the model.`);
      this.copy({ buffer: t, offset: id * dim, strides: [1] }, { buffer: o, offset: i * dim, strides: [1] }, [dim]);
    }
  }

  embeddingBackward(ids: DeviceBuffer, dy: DeviceBuffer, count: number, dim: number, dtable: DeviceBuffer): void {
    const idx = readI32(ids, 0, count);
    const g = readF32(dy, 0, count * dim);
    const t = readF32(dtable, 0, dtable.length);
    for (let i = 0; i < count; i++) {
      const row = idx[i]! * dim;
      for (let j = 0; j < dim; j++) t[row + j]! += g[i * dim + j]!;
    }
    commitF32(dtable, 0, t);
  }

  crossEntropy(logits: DeviceBuffer, labels: DeviceBuffer, rows: number, vocab: number, ignoreIndex: number, losses: DeviceBuffer, lse: DeviceBuffer): void {
    const lab = readI32(labels, 0, rows);
    const ls = writableF32(losses, 0, rows);
    const es = writableF32(lse, 0, rows);
    for (let r = 0; r < rows; r++) {
      const xs = readF32(logits, r * vocab, vocab);
      let mx = -Infinity;
      for (let i = 0; i < vocab; i++) mx = Math.max(mx, xs[i]!);
      let sum = 0;
      for (let i = 0; i < vocab; i++) sum += Math.exp(xs[i]! - mx);
      const l = mx + Math.log(sum);
      es[r] = l;
      const y = lab[r]!;
      if (y === ignoreIndex) {
        ls[r] = 0;
        continue;
      }
      if (y < 0 || y >= vocab) throw new Error(`Label ${y} is outside the vocabulary of ${vocab}; use ${ignoreIndex} for positions without a target.`);
      ls[r] = l - xs[y]!;
    }
    commitF32(losses, 0, ls);
    commitF32(lse, 0, es);
  }

  crossEntropyBackward(logits: DeviceBuffer, lse: DeviceBuffer, labels: DeviceBuffer, scale: DeviceBuffer, rows: number, vocab: number, ignoreIndex: number, dlogits: DeviceBuffer): void {
    const lab = readI32(labels, 0, rows);
    const es = readF32(lse, 0, rows);
    const sc = readF32(scale, 0, rows);
    for (let r = 0; r < rows; r++) {
      const out = writableF32(dlogits, r * vocab, vocab);
      const y = lab[r]!;
      if (y === ignoreIndex) {
        out.fill(0);
      } else {
        const xs = readF32(logits, r * vocab, vocab);
        const l = es[r]!;
        const k = sc[r]!;
        for (let i = 0; i < vocab; i++) out[i] = Math.exp(xs[i]! - l) * k;
        out[y] = out[y]! - k;
      }
      commitF32(dlogits, r * vocab, out);
    }
  }

  adamw(param: DeviceBuffer, grad: DeviceBuffer, expAvg: DeviceBuffer, expAvgSq: DeviceBuffer, length: number, a: AdamWArgs): void {
    // Follows torch.optim.AdamW's single-tensor path operation by operation in float32 (Math.fround), so
    // results match torch to the last bit where the operations agree.
    const p = readF32(param, 0, length);
    const g = readF32(grad, 0, length);
    const m = readF32(expAvg, 0, length);
    const v = readF32(expAvgSq, 0, length);
    const pw = writableF32(param, 0, length);
    const mw = writableF32(expAvg, 0, length);
    const vw = writableF32(expAvgSq, 0, length);
    const decay = f(1 - a.lr * a.weightDecay);
    const w1 = f(1 - a.beta1);
    const b2 = f(a.beta2);
    const w2 = f(1 - a.beta2);
    const bc1 = 1 - a.beta1 ** a.step;
    const bc2Sqrt = Math.sqrt(1 - a.beta2 ** a.step);
    const stepSize = f(a.lr / bc1);
    const bc2f = f(bc2Sqrt);
    const eps = f(a.eps);
    for (let i = 0; i < length; i++) {
      const pi = f(p[i]! * decay);
      const gi = g[i]!;
      const mi0 = m[i]!;
      // torch lerp: weight < 0.5 ? self + w * (end - self) : end - (end - self) * (1 - w)
      const mi = w1 < 0.5 ? f(mi0 + f(w1 * f(gi - mi0))) : f(gi - f(f(gi - mi0) * f(1 - w1)));
      const vi = f(f(v[i]! * b2) + f(w2 * f(gi * gi)));
      const denom = f(f(f(Math.sqrt(vi)) / bc2f) + eps);
      pw[i] = f(pi + f(-stepSize * f(mi / denom)));
      mw[i] = mi;
      vw[i] = vi;
    }
    commitF32(param, 0, pw);
    commitF32(expAvg, 0, mw);
    commitF32(expAvgSq, 0, vw);
  }

  nf4Dequantize(packed: DeviceBuffer, absmax: DeviceBuffer, code: DeviceBuffer, length: number, blocksize: number, out: DeviceBuffer): void {
    const bytes = asCpu(packed).data as Uint8Array;
    const scales = readF32(absmax, 0, absmax.length);
    const levels = readF32(code, 0, 16);
    const ys = writableF32(out, 0, length);
    for (let i = 0; i < length; i++) {
      const byte = bytes[i >> 1]!;
      const nibble = (i & 1) === 0 ? byte >> 4 : byte & 0x0f;
      ys[i] = f(levels[nibble]! * scales[(i / blocksize) | 0]!);
    }
    commitF32(out, 0, ys);
  }

  attention(q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, out: DeviceBuffer, lse: DeviceBuffer, args: AttentionArgs): void {
    cpuAttention(q, k, v, out, lse, args, undefined, this.invariant.active);
  }

  attentionBackward(
    q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, out: DeviceBuffer, lse: DeviceBuffer, dout: DeviceBuffer,
    dq: DeviceBuffer, dk: DeviceBuffer, dv: DeviceBuffer, args: AttentionBackwardArgs,
  ): void {
    cpuAttentionBackward(q, k, v, out, lse, dout, dq, dk, dv, args);
  }

  pagedKvWrite(k: DeviceBuffer, v: DeviceBuffer, kPool: DeviceBuffer, vPool: DeviceBuffer, args: PagedKvWriteArgs): void {
    cpuPagedKvWrite(k, v, kPool, vPool, args);
  }

  pagedAttention(q: DeviceBuffer, kPool: DeviceBuffer, vPool: DeviceBuffer, out: DeviceBuffer, args: PagedAttentionArgs): void {
    cpuPagedAttention(q, kPool, vPool, out, args, this.invariant.active);
  }
}
