import type { BinaryOp, UnaryOp } from '../backend/backend.js';
import { broadcastShapes, broadcastStrides } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { allocLike, backendOf, makeResult, promote, sameDevice } from './engine.js';
import { sumToShape } from './reduce.js';
import { compact, contiguous } from './shape-ops.js';

function binary(op: BinaryOp, a: Tensor, b: Tensor, backward: ((g: Tensor) => (Tensor | null)[]) | null): Tensor {
  const backend = sameDevice(a, b);
  const shape = broadcastShapes(a.shape, b.shape);
  const buf = allocLike(backend, promote(a, b), shape);
  backend.binary(
    op,
    { buffer: a.buffer, offset: a.offset, strides: broadcastStrides(a.shape, a.strides, shape) },
    { buffer: b.buffer, offset: b.offset, strides: broadcastStrides(b.shape, b.strides, shape) },
    buf,
    shape,
  );
  return makeResult(buf, shape, op, [a, b], backward);
}

export function add(a: Tensor, b: Tensor): Tensor {
  return binary('add', a, b, (g) => [a.requiresGrad ? sumToShape(g, a.shape) : null, b.requiresGrad ? sumToShape(g, b.shape) : null]);
}

export function sub(a: Tensor, b: Tensor): Tensor {
  return binary('sub', a, b, (g) => [a.requiresGrad ? sumToShape(g, a.shape) : null, b.requiresGrad ? sumToShape(neg(g), b.shape) : null]);
}

export function mul(a: Tensor, b: Tensor): Tensor {
  return binary('mul', a, b, (g) => [a.requiresGrad ? sumToShape(mul(g, b), a.shape) : null, b.requiresGrad ? sumToShape(mul(g, a), b.shape) : null]);
}

export function div(a: Tensor, b: Tensor): Tensor {
  return binary('div', a, b, (g) => [
    a.requiresGrad ? sumToShape(div(g, b), a.shape) : null,
    b.requiresGrad ? sumToShape(neg(div(mul(g, a), mul(b, b))), b.shape) : null,
  ]);
}

export function maximum(a: Tensor, b: Tensor): Tensor {
  return binary('maximum', a, b, null);
}

/** 1 where a > b else 0 (no gradient). */
export function greater(a: Tensor, b: Tensor): Tensor {
  return binary('gt', a, b, null);
}

/** x * scale + bias with scalars. */
export function affine(t: Tensor, scale: number, bias: number): Tensor {
  const src = contiguous(t);
  const backend = backendOf(src);
  const buf = allocLike(backend, src.dtype, src.shape);
  backend.affine(src.buffer, src.offset, buf, src.numel, scale, bias);
  return makeResult(buf, src.shape, 'affine', [src], (g) => [mulScalar(g, scale)]);
}

export function mulScalar(t: Tensor, s: number): Tensor {
  return affine(t, s, 0);
}

export function addScalar(t: Tensor, s: number): Tensor {
  return affine(t, 1, s);
}

function unary(op: UnaryOp, t: Tensor, backward: ((g: Tensor, out: Tensor) => Tensor) | null): Tensor {
  const src = contiguous(t);
  const backend = backendOf(src);
  const buf = allocLike(backend, src.dtype, src.shape);
  backend.unary(op, src.buffer, src.offset, buf, src.numel);
  const out: Tensor = makeResult(buf, src.shape, op, [src], backward ? (g) => [backward(g, out)] : null);
  return out;
}

export function neg(t: Tensor): Tensor {
  return unary('neg', t, (g) => neg(g));
}
export function exp(t: Tensor): Tensor {
  return unary('exp', t, (g, out) => mul(g, out));
}
export function log(t: Tensor): Tensor {
  return unary('log', t, (g) => div(g, t));
}
export function sqrt(t: Tensor): Tensor {
  return unary('sqrt', t, (g, out) => div(mulScalar(g, 0.5), out));
}
export function rsqrt(t: Tensor): Tensor {
  return unary('rsqrt', t, (g, out) => mul(g, mulScalar(mul(out, mul(out, out)), -0.5)));
}
export function square(t: Tensor): Tensor {
  return unary('square', t, (g) => mul(g, mulScalar(t, 2)));
}
export function sigmoid(t: Tensor): Tensor {
  return unary('sigmoid', t, (g, out) => mul(g, mul(out, affine(out, -1, 1))));
}
export function tanh(t: Tensor): Tensor {
  return unary('tanh', t, (g, out) => mul(g, affine(mul(out, out), -1, 1)));
}
export function relu(t: Tensor): Tensor {
  return unary('relu', t, (g, out) => mul(g, greater(out, zerosScalar(out))));
}
export function silu(t: Tensor): Tensor {
  return unary('silu', t, (g) => binary('siluGrad', compact(t), g, null));
}

function zerosScalar(like: Tensor): Tensor {
  const backend = backendOf(like);
  const buf = backend.alloc(like.dtype, 1);
  backend.fill(buf, 0, 1, 0);
  return makeResult(buf, [], 'zero', [], null);
}
