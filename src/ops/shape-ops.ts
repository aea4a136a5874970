import { broadcastShapes, contiguousStrides, formatShape, inferShape, normalizeDim, numelOf, shapesEqual, type Shape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { allocLike, backendOf, makeResult } from './engine.js';
import { sumToShape } from './reduce.js';

/** A contiguous copy (same tensor when already contiguous). */
export function contiguous(t: Tensor): Tensor {
  if (t.isContiguous()) return t;
  return copyToContiguous(t);
}

/** Contiguous and starting at element 0 of its buffer: what kernels without offsets need. */
export function compact(t: Tensor): Tensor {
  if (t.isContiguous() && t.offset === 0) return t;
  return copyToContiguous(t);
}

function copyToContiguous(t: Tensor): Tensor {
  const backend = backendOf(t);
  const buf = allocLike(backend, t.dtype, t.shape);
  backend.copy({ buffer: t.buffer, offset: t.offset, strides: t.strides }, { buffer: buf, offset: 0, strides: contiguousStrides(t.shape) }, t.shape);
  return makeResult(buf, t.shape, 'contiguous', [t], (g) => [g]);
}

/** View with a new shape (copies first when the layout does not allow a view). */
export function reshape(t: Tensor, shape: Shape): Tensor {
  const target = inferShape(shape, t.numel);
  if (shapesEqual(target, t.shape)) return t;
  const src = contiguous(t);
  return makeResult(src.buffer, target, 'reshape', [src], (g) => [reshape(g, src.shape)], contiguousStrides(target), src.offset);
}

export function flatten(t: Tensor, startDim = 0): Tensor {
  const s = normalizeDim(startDim, t.rank);
  return reshape(t, [...t.shape.slice(0, s), -1]);
}

export function unsqueeze(t: Tensor, dim: number): Tensor {
  const d = dim < 0 ? dim + t.rank + 1 : dim;
  const shape = [...t.shape];
  shape.splice(d, 0, 1);
  const strides = [...t.strides];
  strides.splice(d, 0, d < t.rank ? t.strides[d]! * t.shape[d]! : 1);
  return makeResult(t.buffer, shape, 'unsqueeze', [t], (g) => [reshape(g, t.shape)], strides, t.offset);
}

export function permute(t: Tensor, dims: readonly number[]): Tensor {
  if (dims.length !== t.rank) throw new Error(`permute needs ${t.rank} dimensions, got ${dims.length}.`);
  const shape = dims.map((d) => t.shape[d]!);
  const strides = dims.map((d) => t.strides[d]!);
  const inverse = new Array<number>(dims.length);
  dims.forEach((d, i) => (inverse[d] = i));
  return makeResult(t.buffer, shape, 'permute', [t], (g) => [permute(g, inverse)], strides, t.offset);
}

export function transpose(t: Tensor, d0 = -2, d1 = -1): Tensor {
  const a = normalizeDim(d0, t.rank);
  const b = normalizeDim(d1, t.rank);
  const dims = Array.from({ length: t.rank }, (_, i) => i);
  dims[a] = b;
  dims[b] = a;
  return permute(t, dims);
}

/** Elements [start, start+length) along dim, as a view. */
export function narrow(t: Tensor, dim: number, start: number, length: number): Tensor {
  const d = normalizeDim(dim, t.rank);
  if (start < 0 || length < 0 || start + length > t.shape[d]!) {
    throw new Error(`narrow(${dim}, ${start}, ${length}) is outside a dimension of size ${t.shape[d]}.`);
  }
  const shape = [...t.shape];
  shape[d] = length;
  return makeResult(t.buffer, shape, 'narrow', [t], (g) => [padInto(g, t.shape, d, start)], t.strides, t.offset + start * t.strides[d]!);
}

/** Zeros of `shape` with g written at [start, start+g.shape[dim]) along dim (the gradient of narrow). */
function padInto(g: Tensor, shape: Shape, dim: number, start: number): Tensor {
  const backend = backendOf(g);
  const n = numelOf(shape);
  const buf = backend.alloc(g.dtype, n);
  backend.fill(buf, 0, n, 0);
  const strides = contiguousStrides(shape);
  backend.copy({ buffer: g.buffer, offset: g.offset, strides: g.strides }, { buffer: buf, offset: start * strides[dim]!, strides }, g.shape);
  return makeResult(buf, shape, 'pad', [g], (gg) => [narrow(gg, dim, start, g.shape[dim]!)]);
}

/** Broadcast view (stride 0 on expanded dims); its gradient sums back. */
export function expand(t: Tensor, shape: Shape): Tensor {
  const target = broadcastShapes(t.shape, shape);
  if (!shapesEqual(target, shape)) throw new Error(`Cannot expand ${formatShape(t.shape)} to ${formatShape(shape)}.`);
  const off = shape.length - t.rank;
  const strides = shape.map((d, i) => (i < off || t.shape[i - off] === 1 && d !== 1 ? 0 : t.strides[i - off]!));
  return makeResult(t.buffer, shape, 'expand', [t], (g) => [sumToShape(g, t.shape)], strides, t.offset);
}

/** Concatenation along dim. */
export function cat(ts: readonly Tensor[], dim: number): Tensor {
  const first = ts[0];
  if (!first) throw new Error('cat needs at least one tensor.');
  const d = normalizeDim(dim, first.rank);
  const shape = [...first.shape];
  shape[d] = ts.reduce((p, t) => p + t.shape[d]!, 0);
  const backend = backendOf(first);
  const buf = allocLike(backend, first.dtype, shape);
  const strides = contiguousStrides(shape);
  let at = 0;
  for (const t of ts) {
    if (t.rank !== first.rank || t.shape.some((s, i) => i !== d && s !== first.shape[i])) {
      throw new Error(`cat: shape ${formatShape(t.shape)} does not match ${formatShape(first.shape)} outside dimension ${d}.`);
    }
    backend.copy({ buffer: t.buffer, offset: t.offset, strides: t.strides }, { buffer: buf, offset: at * strides[d]!, strides }, t.shape);
    at += t.shape[d]!;
  }
  const sizes = ts.map((t) => t.shape[d]!);
  return makeResult(buf, shape, 'cat', ts, (g) => {
    let s = 0;
    return sizes.map((len) => {
      const part = narrow(g, d, s, len);
      s += len;
      return part;
    });
  });
}

/** Writes src into dst[..., start:start+len, ...] along dim, in place, without autograd (KV caches, buffers). */
export function writeSlice(dst: Tensor, dim: number, start: number, src: Tensor): void {
  const d = normalizeDim(dim, dst.rank);
  const backend = backendOf(dst);
  backend.copy(
    { buffer: src.buffer, offset: src.offset, strides: src.strides },
    { buffer: dst.buffer, offset: dst.offset + start * dst.strides[d]!, strides: dst.strides },
    src.shape,
  );
}
