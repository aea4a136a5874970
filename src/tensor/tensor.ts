import type { DeviceBuffer, HostArray } from './buffer.js';
import { bf16ArrayToF32, f16ArrayToF32, type DType } from './dtype.js';
import { contiguousStrides, numelOf, type Shape } from './shape.js';
import { trackTensor } from './scope.js';

/** One recorded operation of the autograd graph: its inputs and how to turn d(out) into d(inputs). */
export interface GradNode {
  readonly name: string;
  readonly inputs: readonly Tensor[];
  /** Returns one gradient per input (null where the input needs none). Written with other ops. */
  backward(gradOutput: Tensor): (Tensor | null)[];
  /** Set on the outputs of an op with several: the op, and which of its outputs this tensor is. */
  readonly group?: { readonly op: GradGroup; readonly index: number };
}

/**
 * An op with several outputs whose gradients are computed together: backward runs once, after every output the
 * pass reaches has its gradient, with null for outputs that got none.
 */
export interface GradGroup {
  readonly name: string;
  readonly inputs: readonly Tensor[];
  readonly outputs: number;
  backward(gradOutputs: readonly (Tensor | null)[]): (Tensor | null)[];
}

/**
 * What the tensor layer needs from the layers below it (installed by ops/ on import), so that this file stays
 * free of backends: reading values back, running backward(), and releasing storage.
 */
export interface TensorRuntime {
  toHost(t: Tensor): Promise<HostArray>;
  backward(root: Tensor, grad: Tensor | null): void;
  release(buffer: DeviceBuffer): void;
}

let runtime: TensorRuntime | null = null;
export function installTensorRuntime(r: TensorRuntime): void {
  runtime = r;
}
function rt(): TensorRuntime {
  if (!runtime) throw new Error('loraforge: no tensor runtime installed; import from "loraforge" rather than from an inner module.');
  return runtime;
}

const refCounts = new WeakMap<DeviceBuffer, number>();
let nextId = 1;

/** The id the next tensor will get: ids grow monotonically, so a tensor made after this call has an id >= it. */
export function nextTensorId(): number {
  return nextId;
}

export class Tensor {
  readonly id = nextId++;
  readonly buffer: DeviceBuffer;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  /** Element offset of this view into its buffer. */
  readonly offset: number;
  requiresGrad = false;
  grad: Tensor | null = null;
  gradFn: GradNode | null = null;
  /** True once dispose() ran; using a disposed tensor is a bug the ops report. */
  disposed = false;
  /** Kept tensors survive the end of the scope they were made in. */
  kept = false;

  constructor(buffer: DeviceBuffer, shape: Shape, strides?: readonly number[], offset = 0) {
    this.buffer = buffer;
    this.shape = [...shape];
    this.strides = strides ? [...strides] : contiguousStrides(shape);
    this.offset = offset;
    refCounts.set(buffer, (refCounts.get(buffer) ?? 0) + 1);
    trackTensor(this);
  }

  get dtype(): DType {
    return this.buffer.dtype;
  }
  get device(): string {
    return this.buffer.device;
  }
  get rank(): number {
    return this.shape.length;
  }
  get numel(): number {
    return numelOf(this.shape);
  }

  isContiguous(): boolean {
    let expected = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== expected) return false;
      expected *= this.shape[i]!;
    }
    return true;
  }

  /** Values as float32 (floating dtypes) or as numbers (integer dtypes), in row-major order. */
  async data(): Promise<Float32Array> {
    const host = await rt().toHost(this);
    if (host instanceof Float32Array) return host;
    if (host instanceof BigInt64Array) return Float32Array.from(host, (v) => Number(v));
    if (host instanceof Uint16Array) return this.dtype === 'bfloat16' ? bf16ArrayToF32(host) : f16ArrayToF32(host);
    return Float32Array.from(host);
  }

  /** Integer values (ids, labels) as Int32Array. */
  async intData(): Promise<Int32Array> {
    const host = await rt().toHost(this);
    if (host instanceof Int32Array) return host;
    if (host instanceof BigInt64Array) return Int32Array.from(host, (v) => Number(v));
    return Int32Array.from(host);
  }

  async item(): Promise<number> {
    if (this.numel !== 1) throw new Error(`item() needs a tensor with one element; this one has shape [${this.shape.join(', ')}].`);
    return (await this.data())[0]!;
  }

  async tolist(): Promise<number[]> {
    return Array.from(this.dtype === 'int32' || this.dtype === 'int64' ? await this.intData() : await this.data());
  }

  /** Reverse-mode autodiff from this tensor; a scalar needs no gradient argument. */
  async backward(grad?: Tensor): Promise<void> {
    rt().backward(this, grad ?? null);
  }

  /** Marks this tensor as trainable (a leaf that receives .grad). */
  requiresGrad_(flag = true): this {
    this.requiresGrad = flag;
    return this;
  }

  keep(): this {
    this.kept = true;
    return this;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.gradFn = null;
    const n = (refCounts.get(this.buffer) ?? 1) - 1;
    if (n <= 0) {
      refCounts.delete(this.buffer);
      rt().release(this.buffer);
    } else {
      refCounts.set(this.buffer, n);
    }
  }

  toString(): string {
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}
