import { getBackend } from '../backend/registry.js';
import type { HostArray } from '../tensor/buffer.js';
import { f32ArrayToBf16, f32ArrayToF16, type DType } from '../tensor/dtype.js';
import { contiguousStrides, formatShape, numelOf, type Shape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { backendOf, makeResult } from './engine.js';
import { contiguous } from './shape-ops.js';

export interface TensorOptions {
  dtype?: DType;
  device?: string;
  requiresGrad?: boolean;
}

type Nested = number | readonly Nested[];

function flatten(values: Nested, shape: number[], out: number[], depth: number): void {
  if (typeof values === 'number') {
    out.push(values);
    return;
  }
  if (shape.length === depth) shape.push(values.length);
  else if (shape[depth] !== values.length) throw new Error(`Ragged nested array: expected ${shape[depth]} items at depth ${depth}, got ${values.length}; pad rows to one length.`);
  for (const v of values) flatten(v, shape, out, depth + 1);
}

/** Host values converted to the dtype's host array (float16/bfloat16 become raw bits). */
export function hostArray(dtype: DType, values: ArrayLike<number>): HostArray {
  switch (dtype) {
    case 'float32':
      return Float32Array.from(values);
    case 'bfloat16':
      return f32ArrayToBf16(Float32Array.from(values));
    case 'float16':
      return f32ArrayToF16(Float32Array.from(values));
    case 'int32':
      return Int32Array.from(values);
    case 'int64':
      return BigInt64Array.from(Array.from(values, (v) => BigInt(Math.trunc(v))));
    case 'uint8':
      return Uint8Array.from(values);
  }
}

/** A tensor from nested number arrays or a flat typed array with an explicit shape. */
export function tensor(values: Nested | ArrayLike<number>, shapeOrOptions?: Shape | TensorOptions, maybeOptions?: TensorOptions): Tensor {
  const explicitShape = Array.isArray(shapeOrOptions) ? (shapeOrOptions as Shape) : undefined;
  const options = (explicitShape ? maybeOptions : (shapeOrOptions as TensorOptions | undefined)) ?? {};
  let flat: ArrayLike<number>;
  let shape: number[];
  if (explicitShape) {
    flat = values as ArrayLike<number>;
    shape = [...explicitShape];
    if (numelOf(shape) !== flat.length) throw new Error(`${flat.length} values do not fill shape ${formatShape(shape)}.`);
  } else if (typeof values === 'number') {
    flat = [values];
    shape = [];
  } else if (ArrayBuffer.isView(values)) {
    flat = values as unknown as ArrayLike<number>;
    shape = [flat.length];
  } else {
    const out: number[] = [];
    shape = [];
    flatten(values as Nested, shape, out, 0);
    flat = out;
  }
  const dtype = options.dtype ?? 'float32';
  return fromHost(hostArray(dtype, flat), shape, dtype, options.device ?? 'cpu', options.requiresGrad);
}

/** Wraps host data already in the dtype's host layout (float16/bfloat16 as raw Uint16 bits). */
export function fromHost(data: HostArray, shape: Shape, dtype: DType, device = 'cpu', requiresGrad = false): Tensor {
  if (numelOf(shape) !== data.length) throw new Error(`${data.length} values do not fill shape ${formatShape(shape)}.`);
  const t = new Tensor(getBackend(device).fromHost(dtype, data), shape);
  t.requiresGrad = requiresGrad;
  return t;
}

export function full(shape: Shape, value: number, options: TensorOptions = {}): Tensor {
  const backend = getBackend(options.device ?? 'cpu');
  const dtype = options.dtype ?? 'float32';
  const n = numelOf(shape);
  const buf = backend.alloc(dtype, n);
  backend.fill(buf, 0, n, value);
  const t = new Tensor(buf, shape);
  t.requiresGrad = options.requiresGrad ?? false;
  return t;
}

export function zeros(shape: Shape, options: TensorOptions = {}): Tensor {
  return full(shape, 0, options);
}

export function ones(shape: Shape, options: TensorOptions = {}): Tensor {
  return full(shape, 1, options);
}

export function zerosLike(t: Tensor, dtype: DType = t.dtype): Tensor {
  return full(t.shape, 0, { dtype, device: t.device });
}

export function onesLike(t: Tensor): Tensor {
  return full(t.shape, 1, { dtype: t.dtype, device: t.device });
}

export function arange(n: number, options: TensorOptions = {}): Tensor {
  return tensor(Array.from({ length: n }, (_, i) => i), [n], { dtype: options.dtype ?? 'int32', device: options.device });
}

/** Copy to another dtype and/or device; gradients flow back through the conversion. */
export function to(t: Tensor, target: { dtype?: DType; device?: string }): Tensor {
  const dtype = target.dtype ?? t.dtype;
  const device = target.device ?? t.device;
  if (dtype === t.dtype && device === t.device) return t;
  const src = backendOf(t);
  if (device === t.device) {
    const buf = src.allocUninitialized(dtype, t.numel);
    src.copy({ buffer: t.buffer, offset: t.offset, strides: t.strides }, { buffer: buf, offset: 0, strides: contiguousStrides(t.shape) }, t.shape);
    return makeResult(buf, t.shape, 'cast', [t], (g) => [to(g, { dtype: t.dtype })]);
  }
  throw new Error(`Synchronous copy from ${t.device} to ${device} is not possible; use toDevice() (async).`);
}

/** Moves a tensor between devices (reads back through the host), keeping dtype, shape and requiresGrad. */
export async function toDevice(t: Tensor, device: string): Promise<Tensor> {
  if (device === t.device) return t;
  const c = contiguous(t);
  const host = await backendOf(c).toHost(c.buffer, c.offset, c.numel);
  return fromHost(host, t.shape, t.dtype, device, t.requiresGrad);
}
