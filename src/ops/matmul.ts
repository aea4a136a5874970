import { broadcastShapes, formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { allocLike, makeResult, promote, sameDevice } from './engine.js';
import { sumToShape } from './reduce.js';
import { compact, expand, reshape, transpose } from './shape-ops.js';
import { add } from './elementwise.js';

/** How a [..., rows, cols] view is laid out for GEMM: no copy when its matrices are row- or column-major. */
interface MatrixLayout {
  t: Tensor;
  trans: boolean;
  ld: number;
  batchStride: number;
}

function layoutOf(t: Tensor, batch: number): MatrixLayout {
  const r = t.rank;
  const rows = t.shape[r - 2]!;
  const cols = t.shape[r - 1]!;
  const rs = t.strides[r - 2]!;
  const cs = t.strides[r - 1]!;
  let trans: boolean | null = null;
  let ld = 0;
  if (cs === 1 && (rs >= cols || rows === 1)) {
    trans = false;
    ld = Math.max(rs, cols);
  } else if (rs === 1 && (cs >= rows || cols === 1)) {
    trans = true;
    ld = Math.max(cs, rows);
  }
  // Batch dims must collapse to one stride (or be broadcast with stride 0 everywhere).
  let batchStride = 0;
  let ok = trans !== null;
  if (ok && r > 2) {
    const dims = t.shape.slice(0, r - 2);
    const strides = t.strides.slice(0, r - 2);
    const nonTrivial = dims.map((d, i) => ({ d, s: strides[i]! })).filter((x) => x.d !== 1);
    if (nonTrivial.every((x) => x.s === 0)) batchStride = 0;
    else {
      batchStride = nonTrivial[nonTrivial.length - 1]!.s;
      let expect = batchStride;
      for (let i = nonTrivial.length - 1; i >= 0; i--) {
        if (nonTrivial[i]!.s !== expect) ok = false;
        expect *= nonTrivial[i]!.d;
      }
    }
  }
  if (!ok) {
    const c = compact(t);
    return { t: c, trans: false, ld: cols, batchStride: batch > 1 ? rows * cols : 0 };
  }
  return { t, trans: trans!, ld, batchStride };
}

/**
 * Matrix product with numpy semantics for the batch dims ([..., m, k] @ [..., k, n]); 2-D weights broadcast.
 * Transposed views are passed to the GEMM as transposes, never copied.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.rank < 2 || b.rank < 2) throw new Error(`matmul needs tensors of rank >= 2, got ${formatShape(a.shape)} and ${formatShape(b.shape)}.`);
  const m = a.shape[a.rank - 2]!;
  const k = a.shape[a.rank - 1]!;
  const n = b.shape[b.rank - 1]!;
  if (b.shape[b.rank - 2] !== k) throw new Error(`matmul: inner dimensions differ: ${formatShape(a.shape)} @ ${formatShape(b.shape)}.`);
  const backend = sameDevice(a, b);

  // [..., m, k] @ [k, n] with a's batch dims folded into m: one big GEMM.
  if (b.rank === 2 && a.rank > 2 && a.isContiguous()) {
    const a2 = reshape(a, [-1, k]);
    return reshape(matmul(a2, b), [...a.shape.slice(0, -1), n]);
  }

  const batchShape = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const batch = batchShape.reduce((p, d) => p * d, 1);
  const ae = a.rank - 2 === batchShape.length && a.shape.slice(0, -2).every((d, i) => d === batchShape[i]) ? a : expand(a, [...batchShape, m, k]);
  const be = b.rank - 2 === batchShape.length && b.shape.slice(0, -2).every((d, i) => d === batchShape[i]) ? b : expand(b, [...batchShape, k, n]);
  const la = layoutOf(ae, batch);
  const lb = layoutOf(be, batch);
  const outShape = [...batchShape, m, n];
  const buf = allocLike(backend, promote(a, b), outShape);
  backend.matmul({
    a: la.t.buffer, aOffset: la.t.offset, b: lb.t.buffer, bOffset: lb.t.offset, c: buf, cOffset: 0,
    m, n, k, transA: la.trans, transB: lb.trans, lda: la.ld, ldb: lb.ld, ldc: n,
    batch, strideA: la.batchStride, strideB: lb.batchStride, strideC: m * n, alpha: 1, beta: 0,
  });
  return makeResult(buf, outShape, 'matmul', [a, b], (g) => [
    a.requiresGrad ? sumToShape(matmul(g, transpose(b)), a.shape) : null,
    b.requiresGrad ? matmulGradB(a, g, b.shape) : null,
  ]);
}

/** d(b) = a^T @ g summed over every batch dim that b was broadcast along (folded into one GEMM when b is 2-D). */
function matmulGradB(a: Tensor, g: Tensor, bShape: readonly number[]): Tensor {
  if (bShape.length === 2 && a.rank > 2) {
    const k = a.shape[a.rank - 1]!;
    const n = g.shape[g.rank - 1]!;
    return matmul(transpose(reshape(compact(a), [-1, k])), reshape(compact(g), [-1, n]));
  }
  return sumToShape(matmul(transpose(a), g), bShape);
}

/** y = x @ W^T + bias, with W stored [out, in] as PyTorch does. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const y = matmul(x, transpose(weight));
  return bias ? add(y, bias) : y;
}
