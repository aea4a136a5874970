import type { BinaryOp, Backend, FusedKernel, LoraAdapterView, UnaryOp, View } from '../backend/backend.js';
import type { DeviceBuffer } from '../tensor/buffer.js';
import { contiguousStrides } from '../tensor/shape.js';

/**
 * The fused kernels of Backend, composed from its primitive kernels (copy, fill, unary, binary, affine, reduce,
 * fromHost) for a backend that leaves them out. Each takes the fused kernel's arguments and writes the same
 * outputs; intermediates are float32 buffers released before it returns, and results are rounded to the
 * outputs' dtype once, at the last step. No input buffer is also an output of the same primitive call, so a
 * backend whose primitives cannot run in place (WebGPU) can serve them. `kernels(backend)` hands ops/ the
 * backend's own kernel where it has one (the fast path, unchanged) and the composition where it has none.
 */
export type FusedKernels = Required<Pick<Backend, Exclude<FusedKernel, (typeof COMPOSED_BY_THEIR_OPS)[number]>>>;

/**
 * Fused kernels that have no buffer-level composition here: the op composes differentiable tensor ops instead
 * when the backend lacks them (`gatedActivation` in elementwise.ts; `attention` runs `attentionReference`;
 * `pagedKvWrite` and `pagedAttention` copy each row's positions between its blocks and dense views).
 */
export const COMPOSED_BY_THEIR_OPS = ['gated', 'gatedBackward', 'attention', 'attentionBackward', 'pagedKvWrite', 'pagedAttention'] as const satisfies readonly FusedKernel[];

/** float32's largest finite value: a row maximum floored to it keeps x - max finite-or-(-inf) on all -inf rows. */
const F32_MAX = 3.4028234663852886e38;

const cache = new WeakMap<Backend, FusedKernels>();

export function kernels(backend: Backend): FusedKernels {
  let k = cache.get(backend);
  if (!k) {
    // Looked up at each call, so the backend's method is the one called whatever happened to it since.
    const own = <K extends keyof FusedKernels>(name: K, composed: FusedKernels[K]): FusedKernels[K] => ((...args: unknown[]) => {
      const fast = backend[name] as ((...a: unknown[]) => void) | undefined;
      return fast ? fast.apply(backend, args) : (composed as (...a: unknown[]) => void)(...args);
    }) as FusedKernels[K];
    k = {
      softmax: own('softmax', (x, rows, cols, out) => composed(backend, (c) => {
        const shape = [rows, cols];
        const xf = c.widen(x, rows * cols);
        const max = c.floorMax(c.reduce('max', xf, rows, cols, 1));
        const e = c.unary('exp', c.binary('sub', c.whole(xf, shape), c.perRow(max), shape), rows * cols);
        // A row of -inf has sum 0; max(sum, 1) changes no other row (their sum is >= 1) and gives it zeros.
        const sum = c.binary('maximum', c.whole(c.reduce('sum', e, rows, cols, 1), [rows]), c.scalar(1, 1), [rows]);
        backend.binary('div', c.whole(e, shape), c.perRow(sum), out, shape);
      })),
      softmaxBackward: own('softmaxBackward', (y, dy, rows, cols, dx) => composed(backend, (c) => {
        const shape = [rows, cols];
        const yf = c.widen(y, rows * cols);
        const gf = c.widen(dy, rows * cols);
        const dot = c.reduce('sum', c.binary('mul', c.whole(yf, shape), c.whole(gf, shape), shape), rows, cols, 1);
        const centred = c.binary('sub', c.whole(gf, shape), c.perRow(dot), shape);
        backend.binary('mul', c.whole(yf, shape), c.whole(centred, shape), dx, shape);
      })),
      rmsNorm: own('rmsNorm', (x, weight, rows, cols, eps, out, rstd) => composed(backend, (c) => {
        const shape = [rows, cols];
        const xf = c.widen(x, rows * cols);
        const ss = c.reduce('sum', c.unary('square', xf, rows * cols), rows, cols, 1);
        backend.unary('rsqrt', c.affine(ss, rows, 1 / cols, eps), 0, rstd, rows);
        const normed = c.binary('mul', c.whole(xf, shape), c.perRow(rstd), shape);
        // transformers normalises in float32 and casts back to the input dtype before the weight multiplies.
        const cast = x.dtype === 'float32' ? normed : c.widen(c.round(normed, x.dtype, rows * cols), rows * cols);
        backend.binary('mul', c.whole(cast, shape), c.perCol(c.widen(weight, cols)), out, shape);
      })),
      rmsNormBackward: own('rmsNormBackward', (x, weight, rstd, dy, rows, cols, dx, dweight) => composed(backend, (c) => {
        // dx = rstd * w * dy - (rstd^3 * sum(w * dy * x) / cols) * x; dweight = sum over rows of dy * x * rstd.
        const shape = [rows, cols];
        const xf = c.widen(x, rows * cols);
        const gf = c.widen(dy, rows * cols);
        const wdy = c.binary('mul', c.whole(gf, shape), c.perCol(c.widen(weight, cols)), shape);
        const dot = c.reduce('sum', c.binary('mul', c.whole(wdy, shape), c.whole(xf, shape), shape), rows, cols, 1);
        const r2 = c.binary('mul', c.whole(rstd, [rows]), c.whole(rstd, [rows]), [rows]);
        const r3 = c.binary('mul', c.whole(r2, [rows]), c.whole(rstd, [rows]), [rows]);
        const k = c.affine(c.binary('mul', c.whole(r3, [rows]), c.whole(dot, [rows]), [rows]), rows, 1 / cols, 0);
        const a = c.binary('mul', c.whole(wdy, shape), c.perRow(rstd), shape);
        const b = c.binary('mul', c.whole(xf, shape), c.perRow(k), shape);
        backend.binary('sub', c.whole(a, shape), c.whole(b, shape), dx, shape);
        if (dweight) {
          const xn = c.binary('mul', c.whole(xf, shape), c.perRow(rstd), shape);
          const g = c.binary('mul', c.whole(gf, shape), c.whole(xn, shape), shape);
          backend.reduce('sum', g, 0, 1, rows, cols, dweight);
        }
      })),
      rope: own('rope', (x, cos, sin, tableBatchStride, batch, seq, heads, headDim, out, inverse, rotaryDim = headDim) => composed(backend, (c) => {
        const half = rotaryDim / 2;
        const shape = [batch, seq, heads, half];
        const n = batch * seq * heads * headDim;
        const xf = c.widen(x, n);
        const xStrides = [seq * heads * headDim, heads * headDim, headDim, 1];
        const tStrides = [tableBatchStride, rotaryDim, 0, 1];
        const xv = (buffer: DeviceBuffer, offset: number): View => ({ buffer, offset, strides: xStrides });
        const tv = (buffer: DeviceBuffer, offset: number): View => ({ buffer, offset, strides: tStrides });
        const prod = (xo: number, table: DeviceBuffer, to: number): View => c.whole(c.binary('mul', xv(xf, xo), tv(table, to), shape), shape);
        // Forward: y1 = x1 c1 - x2 s1, y2 = x2 c2 + x1 s2; inverse (the transposed rotation): y1 = x1 c1 + x2 s2,
        // y2 = x2 c2 - x1 s1. Both halves are computed before out (which may be x) is written.
        const y1 = c.binary(inverse ? 'add' : 'sub', prod(0, cos, 0), inverse ? prod(half, sin, half) : prod(half, sin, 0), shape);
        const y2 = c.binary(inverse ? 'sub' : 'add', prod(half, cos, half), inverse ? prod(0, sin, 0) : prod(0, sin, half), shape);
        backend.copy(c.whole(y1, shape), xv(out, 0), shape);
        backend.copy(c.whole(y2, shape), xv(out, half), shape);
        if (rotaryDim < headDim && out !== x) backend.copy(xv(x, rotaryDim), xv(out, rotaryDim), [batch, seq, heads, headDim - rotaryDim]);
      })),
      crossEntropy: own('crossEntropy', (logits, labels, rows, vocab, ignoreIndex, losses, lse) => composed(backend, (c) => {
        const shape = [rows, vocab];
        const xf = c.widen(logits, rows * vocab);
        const max = c.floorMax(c.reduce('max', xf, rows, vocab, 1));
        const e = c.unary('exp', c.binary('sub', c.whole(xf, shape), c.perRow(max), shape), rows * vocab);
        const logSum = c.unary('log', c.reduce('sum', e, rows, vocab, 1), rows);
        backend.binary('add', c.whole(max, [rows]), c.whole(logSum, [rows]), lse, [rows]);
        // Unlike CpuBackend's kernel, which reads labels on the host and refuses one outside the vocabulary, the
        // composition never reads them back: such a label matches no column and its row's loss is +inf.
        const { valid, onehot } = c.targets(labels, rows, vocab, ignoreIndex);
        // The target's logit: the row maximum of x + log(onehot), which is x there and -inf elsewhere.
        const picked = c.reduce('max', c.binary('add', c.whole(xf, shape), c.whole(c.unary('log', onehot, rows * vocab), shape), shape), rows, vocab, 1);
        const loss = c.binary('sub', c.whole(lse, [rows]), c.whole(picked, [rows]), [rows]);
        backend.binary('mul', c.whole(loss, [rows]), c.whole(valid, [rows]), losses, [rows]);
      })),
      crossEntropyBackward: own('crossEntropyBackward', (logits, lse, labels, scale, rows, vocab, ignoreIndex, dlogits) => composed(backend, (c) => {
        const shape = [rows, vocab];
        const xf = c.widen(logits, rows * vocab);
        const p = c.unary('exp', c.binary('sub', c.whole(xf, shape), c.perRow(lse), shape), rows * vocab);
        const { valid, onehot } = c.targets(labels, rows, vocab, ignoreIndex);
        const k = c.binary('mul', c.whole(scale, [rows]), c.whole(valid, [rows]), [rows]);
        const d = c.binary('sub', c.whole(p, shape), c.whole(onehot, shape), shape);
        backend.binary('mul', c.whole(d, shape), c.perRow(k), dlogits, shape);
      })),
      adamw: own('adamw', (param, grad, expAvg, expAvgSq, n, a) => composed(backend, (c) => {
        // torch.optim.AdamW's single-tensor path op by op, each op one float32 rounding, as CpuBackend.adamw.
        const shape = [n];
        const v = (buffer: DeviceBuffer): View => c.whole(buffer, shape);
        const s = (value: number): View => c.scalar(value, 1);
        const w1 = Math.fround(1 - a.beta1);
        const stepSize = Math.fround(a.lr / (1 - a.beta1 ** a.step));
        const g = c.widen(grad, n);
        const m0 = c.widen(expAvg, n);
        const decayed = c.binary('mul', v(c.widen(param, n)), s(1 - a.lr * a.weightDecay), shape);
        const diff = c.binary('sub', v(g), v(m0), shape);
        // torch's lerp: weight < 0.5 ? self + w * (end - self) : end - (end - self) * (1 - w).
        const m = w1 < 0.5
          ? c.binary('add', v(m0), v(c.binary('mul', s(w1), v(diff), shape)), shape)
          : c.binary('sub', v(g), v(c.binary('mul', v(diff), s(1 - w1), shape)), shape);
        const g2 = c.binary('mul', s(1 - a.beta2), v(c.binary('mul', v(g), v(g), shape)), shape);
        const vNew = c.binary('add', v(c.binary('mul', v(c.widen(expAvgSq, n)), s(a.beta2), shape)), v(g2), shape);
        const denom = c.binary('add', v(c.binary('div', v(c.unary('sqrt', vNew, n)), s(Math.sqrt(1 - a.beta2 ** a.step)), shape)), s(a.eps), shape);
        const update = c.binary('mul', s(-stepSize), v(c.binary('div', v(m), v(denom), shape)), shape);
        backend.binary('add', v(decayed), v(update), param, shape);
        backend.copy(v(m), v(expAvg), shape);
        backend.copy(v(vNew), v(expAvgSq), shape);
      })),
      nf4Dequantize: own('nf4Dequantize', (packed, absmax, code, length, blocksize, out) => composed(backend, (c) => {
        // Byte b holds the codes of two elements (the first in its high nibble): a [256, 2] table of
        // (code[b >> 4], code[b & 15]), gathered by byte with the embedding kernel, gives every element's level.
        const bytes = Math.ceil(length / 2);
        const nibbles = (pick: (b: number) => number): DeviceBuffer => {
          const ids = c.hold(backend.fromHost('int32', Int32Array.from({ length: 256 }, (_, b) => pick(b))));
          const levels = c.f32(256);
          backend.embedding(ids, code, 256, 1, levels);
          return levels;
        };
        const pairs = c.f32(512);
        backend.copy(c.whole(nibbles((b) => b >> 4), [256]), { buffer: pairs, offset: 0, strides: [2] }, [256]);
        backend.copy(c.whole(nibbles((b) => b & 15), [256]), { buffer: pairs, offset: 1, strides: [2] }, [256]);
        const ids = c.hold(backend.allocUninitialized('int32', bytes));
        backend.copy(c.whole(packed, [bytes]), c.whole(ids, [bytes]), [bytes]);
        const levels = c.f32(2 * bytes);
        backend.embedding(ids, pairs, bytes, 2, levels);
        // level * absmax[block] in float32, rounded to out's dtype: whole blocks straight into out, a last partial
        // block through a temporary (binary writes from element 0).
        const whole = Math.floor(length / blocksize);
        const rest = length - whole * blocksize;
        if (whole > 0) backend.binary('mul', c.whole(levels, [whole, blocksize]), c.perRow(absmax), out, [whole, blocksize]);
        if (rest > 0) {
          const tail = c.hold(backend.allocUninitialized(out.dtype, rest));
          backend.binary('mul', c.whole(levels, [rest], whole * blocksize), { buffer: absmax, offset: whole, strides: [0] }, tail, [rest]);
          backend.copy(c.whole(tail, [rest]), c.whole(out, [rest], whole * blocksize), [rest]);
        }
      })),
      multiLora: own('multiLora', ({ rows, inFeatures, x, xOffset, outputs }) => composed(backend, (c) => {
        // SGMV from two GEMMs per run of rows that name one adapter: h = x A^T (float32 [n, rank]), then
        // acc += scale * h B^T into a float32 copy of base, rounded to out's dtype once.
        const xf = c.f32At(x, xOffset, rows * inFeatures);
        const widened = new Map<LoraAdapterView, [F32At, F32At]>();
        const weights = (ad: LoraAdapterView, n: number): [F32At, F32At] => {
          let w = widened.get(ad);
          if (!w) widened.set(ad, (w = [c.f32At(ad.a, ad.aOffset, ad.rank * inFeatures), c.f32At(ad.b, ad.bOffset, n * ad.rank)]));
          return w;
        };
        for (const o of outputs) {
          const n = o.outFeatures;
          const acc = c.f32(rows * n);
          backend.copy(c.whole(o.base, [rows * n], o.baseOffset), c.whole(acc, [rows * n]), [rows * n]);
          for (let start = 0; start < rows;) {
            const s = o.rowAdapter[start]!;
            let end = start + 1;
            while (end < rows && o.rowAdapter[end] === s) end++;
            const ad = s >= 0 ? o.adapters[s] : undefined;
            if (s >= 0 && !ad) throw new Error(`multiLora: row ${start} names adapter ${s} of ${o.adapters.length}.`);
            if (ad && ad.rank > 0) {
              const m = end - start;
              const h = c.f32(m * ad.rank);
              const [wa, wb] = weights(ad, n);
              const gemm = { batch: 1, strideA: 0, strideB: 0, strideC: 0, transA: false, transB: true, m };
              backend.matmul({
                ...gemm, a: xf.buffer, aOffset: xf.offset + start * inFeatures, lda: inFeatures, b: wa.buffer, bOffset: wa.offset, ldb: inFeatures,
                c: h, cOffset: 0, ldc: ad.rank, n: ad.rank, k: inFeatures, alpha: 1, beta: 0,
              });
              backend.matmul({
                ...gemm, a: h, aOffset: 0, lda: ad.rank, b: wb.buffer, bOffset: wb.offset, ldb: ad.rank,
                c: acc, cOffset: start * n, ldc: n, n, k: ad.rank, alpha: ad.scale, beta: 1,
              });
            }
            start = end;
          }
          backend.copy(c.whole(acc, [rows * n]), c.whole(o.out, [rows * n]), [rows * n]);
        }
      })),
    };
    cache.set(backend, k);
  }
  return k;
}

/** Runs one composition, releasing its temporaries however it ends. */
export function composed<T>(backend: Backend, fn: (c: Composer) => T): T {
  const c = new Composer(backend);
  try {
    return fn(c);
  } finally {
    c.releaseAll();
  }
}

/** float32 elements of a buffer from an element offset. */
interface F32At {
  readonly buffer: DeviceBuffer;
  readonly offset: number;
}

/** Primitive calls into fresh float32 temporaries, which it releases together. */
export class Composer {
  private readonly held: DeviceBuffer[] = [];
  constructor(readonly backend: Backend) {}

  f32(length: number): DeviceBuffer {
    return this.hold(this.backend.allocUninitialized('float32', length));
  }

  /** Takes a buffer the composition made itself, to release with the temporaries. */
  hold(buffer: DeviceBuffer): DeviceBuffer {
    this.held.push(buffer);
    return buffer;
  }

  /** A broadcast constant over a shape of `rank` dimensions (a one-element buffer read with stride 0). */
  scalar(value: number, rank: number): View {
    const b = this.f32(1);
    this.backend.fill(b, 0, 1, value);
    return { buffer: b, offset: 0, strides: new Array<number>(rank).fill(0) };
  }

  whole(buffer: DeviceBuffer, shape: readonly number[], offset = 0): View {
    return { buffer, offset, strides: contiguousStrides(shape) };
  }

  /** A per-row vector [rows] read as [rows, cols]. */
  perRow(buffer: DeviceBuffer): View {
    return { buffer, offset: 0, strides: [1, 0] };
  }

  /** A per-column vector [cols] read as [rows, cols]. */
  perCol(buffer: DeviceBuffer): View {
    return { buffer, offset: 0, strides: [0, 1] };
  }

  /** x's elements offset .. offset + length - 1 as float32: where they are when x is float32, else a widened copy. */
  f32At(x: DeviceBuffer, offset: number, length: number): F32At {
    if (x.dtype === 'float32') return { buffer: x, offset };
    const out = this.f32(length);
    this.backend.copy(this.whole(x, [length], offset), this.whole(out, [length]), [length]);
    return { buffer: out, offset: 0 };
  }

  /** The first `length` elements of x as float32: x itself when it is float32, else a widened copy. */
  widen(x: DeviceBuffer, length: number): DeviceBuffer {
    if (x.dtype === 'float32') return x;
    const out = this.f32(length);
    this.backend.copy(this.whole(x, [length]), this.whole(out, [length]), [length]);
    return out;
  }

  /** x (float32) rounded to dtype, in a temporary of that dtype. */
  round(x: DeviceBuffer, dtype: DeviceBuffer['dtype'], length: number): DeviceBuffer {
    const out = this.hold(this.backend.allocUninitialized(dtype, length));
    this.backend.copy(this.whole(x, [length]), this.whole(out, [length]), [length]);
    return out;
  }

  unary(op: UnaryOp, x: DeviceBuffer, length: number): DeviceBuffer {
    const out = this.f32(length);
    this.backend.unary(op, x, 0, out, length);
    return out;
  }

  binary(op: BinaryOp, a: View, b: View, shape: readonly number[]): DeviceBuffer {
    const out = this.f32(shape.reduce((p, d) => p * d, 1));
    this.backend.binary(op, a, b, out, shape);
    return out;
  }

  affine(x: DeviceBuffer, length: number, scale: number, bias: number): DeviceBuffer {
    const out = this.f32(length);
    this.backend.affine(x, 0, out, length, scale, bias);
    return out;
  }

  /** x [outer, axis, inner] reduced over axis into [outer, inner]. */
  reduce(op: 'sum' | 'max', x: DeviceBuffer, outer: number, axis: number, inner: number): DeviceBuffer {
    const out = this.f32(outer * inner);
    this.backend.reduce(op, x, 0, outer, axis, inner, out);
    return out;
  }

  /** Row maxima floored to -F32_MAX, so that a row of -inf subtracts a finite number (exp then gives 0, not NaN). */
  floorMax(max: DeviceBuffer): DeviceBuffer {
    const rows = max.length;
    return this.binary('maximum', this.whole(max, [rows]), this.scalar(-F32_MAX, 1), [rows]);
  }

  /** 1 where a equals b and 0 elsewhere, over `shape`: 1 - (a > b) - (b > a). */
  equal(a: View, b: View, shape: readonly number[]): DeviceBuffer {
    const n = shape.reduce((p, d) => p * d, 1);
    const differs = this.binary('add', this.whole(this.binary('gt', a, b, shape), shape), this.whole(this.binary('gt', b, a, shape), shape), shape);
    return this.affine(differs, n, -1, 1);
  }

  /**
   * int32 labels [rows] as valid [rows] (1 where the label is not ignoreIndex) and onehot [rows, vocab] (1 at the
   * label; an ignored row's onehot marks column 0, and valid zeroes what it contributes).
   */
  targets(labels: DeviceBuffer, rows: number, vocab: number, ignoreIndex: number): { valid: DeviceBuffer; onehot: DeviceBuffer } {
    const lab = this.f32(rows);
    this.backend.copy(this.whole(labels, [rows]), this.whole(lab, [rows]), [rows]);
    const ignored = this.equal(this.whole(lab, [rows]), this.scalar(ignoreIndex, 1), [rows]);
    const valid = this.affine(ignored, rows, -1, 1);
    const safe = this.binary('mul', this.whole(lab, [rows]), this.whole(valid, [rows]), [rows]);
    const iota = this.hold(this.backend.fromHost('float32', Float32Array.from({ length: vocab }, (_, i) => i)));
    const onehot = this.equal(this.perCol(iota), this.perRow(safe), [rows, vocab]);
    return { valid, onehot };
  }

  releaseAll(): void {
    for (const b of this.held.splice(0)) this.backend.release(b);
  }
}
