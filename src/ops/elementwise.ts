import type { BinaryOp, GatedActivation, GatedArgs, RowView, UnaryOp } from '../backend/backend.js';
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

/**
 * torch.clamp(t, min, max): an infinite bound is none. The gradient passes where min <= t <= max, as torch's does
 * (a value equal to a bound keeps its gradient).
 */
export function clamp(t: Tensor, min: number, max: number): Tensor {
  if (Number.isNaN(min) || Number.isNaN(max) || min > max) throw new Error(`clamp needs min <= max, got ${min} and ${max}.`);
  const src = contiguous(t);
  const bound = (v: number) => {
    const backend = backendOf(src);
    const buf = backend.allocUninitialized(src.dtype, 1);
    backend.fill(buf, 0, 1, v);
    return makeResult(buf, [], 'clampBound', [], null);
  };
  const lo = min === -Infinity ? null : bound(min);
  const hi = max === Infinity ? null : bound(max);
  const upper = hi ? binary('minimum', src, hi, null) : src;
  const clamped = lo ? binary('maximum', upper, lo, null) : upper;
  // The pass-through mask: 1 - [t > max] - [min > t].
  return makeResult(clamped.buffer, src.shape, 'clamp', [src], (g) => {
    let mask: Tensor | null = null;
    if (hi) mask = greater(src, hi);
    if (lo) mask = mask ? add(mask, greater(lo, src)) : greater(lo, src);
    return [mask ? mul(g, affine(mask, -1, 1)) : g];
  });
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
/** A unary map whose backward is one kernel: gradOp(x, g) = d/dx op(x) * g. */
function unaryWithGradKernel(op: UnaryOp, gradOp: BinaryOp, t: Tensor): Tensor {
  return unary(op, t, (g) => binary(gradOp, compact(t), g, null));
}
export function silu(t: Tensor): Tensor {
  return unaryWithGradKernel('silu', 'siluGrad', t);
}
/** Exact GELU, 0.5 x (1 + erf(x / sqrt 2)): torch's gelu (transformers' "gelu"), computed in float32 as torch does. */
export function gelu(t: Tensor): Tensor {
  return unaryWithGradKernel('gelu', 'geluGrad', t);
}
/**
 * Tanh GELU, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): torch's gelu(approximate='tanh') (transformers'
 * "gelu_pytorch_tanh", Gemma's GeGLU), computed in float32 as torch does.
 */
export function geluTanh(t: Tensor): Tensor {
  return unaryWithGradKernel('geluTanh', 'geluTanhGrad', t);
}

/**
 * Hugging Face hidden_act names and the op each runs. gelu_new (transformers' NewGELUActivation) is the tanh
 * formula with the same float32 constants and operation order as gelu_pytorch_tanh, so on float32 inputs the two
 * agree; on bfloat16/float16 inputs transformers runs gelu_new as separate ops that round every intermediate to
 * the input dtype, while geluTanh computes in float32 and rounds once (as torch's fused gelu_pytorch_tanh does).
 */
const ACTIVATIONS: Readonly<Record<string, (x: Tensor) => Tensor>> = {
  silu,
  swish: silu,
  gelu,
  gelu_pytorch_tanh: geluTanh,
  gelu_new: geluTanh,
  relu,
};

/** The hidden_act values `activation` accepts. */
export const SUPPORTED_ACTIVATIONS: readonly string[] = Object.freeze(Object.keys(ACTIVATIONS));

/** Applies the activation a Hugging Face config names in hidden_act (ACT2FN's names; SUPPORTED_ACTIVATIONS). */
export function activation(name: string, x: Tensor): Tensor {
  const fn = Object.hasOwn(ACTIVATIONS, name) ? ACTIVATIONS[name] : undefined;
  if (!fn) throw new Error(`Activation ${JSON.stringify(name)} is not supported; supported activations are ${SUPPORTED_ACTIVATIONS.join(', ')}.`);
  return fn(x);
}

/** hidden_act names whose gated MLP has a fused kernel, and the kernel's activation with its gradient op. */
const GATED: Readonly<Record<string, { act: GatedActivation; grad: BinaryOp }>> = {
  silu: { act: 'silu', grad: 'siluGrad' },
  swish: { act: 'silu', grad: 'siluGrad' },
  gelu: { act: 'gelu', grad: 'geluGrad' },
  gelu_pytorch_tanh: { act: 'geluTanh', grad: 'geluTanhGrad' },
  gelu_new: { act: 'geluTanh', grad: 'geluTanhGrad' },
};

/** t as rows of its last dim with one row stride, or null when its leading dims do not collapse to one stride. */
function rowView(t: Tensor): RowView | null {
  const r = t.rank;
  if (r === 0 || (t.shape[r - 1]! > 1 && t.strides[r - 1] !== 1)) return null;
  let rowStride = -1;
  let expected = -1;
  for (let i = r - 2; i >= 0; i--) {
    if (t.shape[i] === 1) continue;
    if (rowStride < 0) rowStride = expected = t.strides[i]!;
    if (t.strides[i] !== expected) return null;
    expected = t.strides[i]! * t.shape[i]!;
  }
  return { buffer: t.buffer, offset: t.offset, rowStride: rowStride < 0 ? t.shape[r - 1]! : rowStride };
}

/**
 * A gated MLP's hidden state, activation(name, gate) * up (SwiGLU, GeGLU), with the bits of those two ops:
 * one fused kernel forward and one backward where the backend has them (the activation is recomputed in the
 * backward instead of kept, so a step holds one [tokens, intermediate] tensor less per layer).
 */
export function gatedActivation(name: string, gate: Tensor, up: Tensor): Tensor {
  const fused = Object.hasOwn(GATED, name) ? GATED[name]! : null;
  const backend = sameDevice(gate, up);
  const gv = rowView(gate);
  const uv = rowView(up);
  const sameShape = gate.rank === up.rank && gate.shape.every((d, i) => d === up.shape[i]);
  if (!fused || !backend.gated || !backend.gatedBackward || gate.dtype !== up.dtype || !sameShape || !gv || !uv) {
    return mul(activation(name, gate), up);
  }
  const cols = gate.shape[gate.rank - 1]!;
  const args: GatedArgs = { act: fused.act, gate: gv, up: uv, rows: cols === 0 ? 0 : gate.numel / cols, cols };
  const out = allocLike(backend, gate.dtype, gate.shape);
  backend.gated(args, out);
  return makeResult(out, gate.shape, 'gatedActivation', [gate, up], (g) => {
    if (g.dtype !== gate.dtype) {
      // The composed ops' backward, whose products promote to g's dtype.
      return [gate.requiresGrad ? binary(fused.grad, compact(gate), mul(g, up), null) : null, up.requiresGrad ? mul(g, activation(name, gate)) : null];
    }
    const dy = compact(g);
    const dgate = gate.requiresGrad ? allocLike(backend, gate.dtype, gate.shape) : null;
    const dup = up.requiresGrad ? allocLike(backend, gate.dtype, gate.shape) : null;
    backend.gatedBackward!(args, dy.buffer, dgate, dup);
    return [dgate && makeResult(dgate, gate.shape, 'gatedActivationGrad', [], null), dup && makeResult(dup, gate.shape, 'gatedActivationGrad', [], null)];
  });
}

function zerosScalar(like: Tensor): Tensor {
  const backend = backendOf(like);
  const buf = backend.alloc(like.dtype, 1);
  backend.fill(buf, 0, 1, 0);
  return makeResult(buf, [], 'zero', [], null);
}
