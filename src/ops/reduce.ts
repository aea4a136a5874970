import { normalizeDim, shapesEqual, type Shape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ReduceOp } from '../backend/backend.js';
import { allocLike, backendOf, makeResult } from './engine.js';
import { compact, expand, reshape } from './shape-ops.js';
import { mulScalar } from './elementwise.js';

function reduceDim(op: ReduceOp, t: Tensor, dim: number, keepdim: boolean): Tensor {
  const d = normalizeDim(dim, t.rank);
  const src = compact(t);
  const outer = src.shape.slice(0, d).reduce((p, x) => p * x, 1);
  const axis = src.shape[d]!;
  const inner = src.shape.slice(d + 1).reduce((p, x) => p * x, 1);
  const keptShape = src.shape.map((x, i) => (i === d ? 1 : x));
  const outShape = keepdim ? keptShape : src.shape.filter((_, i) => i !== d);
  const backend = backendOf(src);
  const dtype = src.dtype === 'int32' || src.dtype === 'int64' || src.dtype === 'uint8' ? 'float32' : src.dtype;
  const buf = allocLike(backend, dtype, outShape);
  backend.reduce(op, src.buffer, 0, outer, axis, inner, buf);
  return makeResult(buf, outShape, op, [src], op === 'sum' ? (g) => [expand(reshape(g, keptShape), src.shape)] : null);
}

/** Sum over the given dims (all when omitted). */
export function sum(t: Tensor, dims?: number | readonly number[], keepdim = false): Tensor {
  if (dims === undefined) return reduceDim('sum', reshape(t, [t.numel]), 0, false);
  const list = (typeof dims === 'number' ? [dims] : [...dims]).map((d) => normalizeDim(d, t.rank)).sort((a, b) => b - a);
  let out = t;
  for (const d of list) out = reduceDim('sum', out, d, true);
  if (!keepdim) out = reshape(out, t.shape.filter((_, i) => !list.includes(i)));
  return out;
}

export function mean(t: Tensor, dims?: number | readonly number[], keepdim = false): Tensor {
  const list = dims === undefined ? t.shape.map((_, i) => i) : typeof dims === 'number' ? [dims] : dims;
  const count = list.reduce((p, d) => p * t.shape[normalizeDim(d, t.rank)]!, 1);
  return mulScalar(sum(t, dims, keepdim), 1 / count);
}

/** Max along one dim (no gradient: used for inspection and sampling). */
export function max(t: Tensor, dim: number, keepdim = false): Tensor {
  return reduceDim('max', t, dim, keepdim);
}

/**
 * Index of the largest element over the last dim, as an int32 tensor of the leading shape (no gradient). Ties go
 * to the lowest index and NaN is never chosen unless it leads its row: the host greedy pick's semantics, see
 * Backend.argmax. Greedy decoding calls it so that only the ids, not the logits, travel back to the host.
 */
export function argmax(t: Tensor): Tensor {
  if (t.rank === 0) throw new Error('argmax needs a tensor of at least one dimension.');
  if (t.dtype !== 'float32' && t.dtype !== 'bfloat16' && t.dtype !== 'float16') throw new Error(`argmax takes a float tensor, got ${t.dtype}.`);
  const src = t.isContiguous() ? t : compact(t);
  const cols = src.shape[src.rank - 1]!;
  const outShape = src.shape.slice(0, -1);
  const rows = outShape.reduce((p, x) => p * x, 1);
  const backend = backendOf(src);
  const buf = allocLike(backend, 'int32', outShape);
  backend.argmax(src.buffer, src.offset, rows, cols, buf);
  return makeResult(buf, outShape, 'argmax', [src], null);
}

/** Sums a broadcast gradient back to the shape of the input it was broadcast from. */
export function sumToShape(g: Tensor, shape: Shape): Tensor {
  if (shapesEqual(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  const dims: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) dims.push(i);
  }
  return reshape(sum(g, dims, true), shape);
}
