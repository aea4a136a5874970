import type { DeviceBuffer, HostArray } from '../../tensor/buffer.js';
import {
  bf16ArrayToF32,
  bytesPerElement,
  f16ArrayToF32,
  f32ArrayToBf16,
  f32ArrayToF16,
  type DType,
} from '../../tensor/dtype.js';

/**
 * CPU storage: a typed array over a SharedArrayBuffer (so GEMM worker threads can read and write it without
 * copies). bfloat16/float16 hold raw 16-bit patterns; kernels widen them to float32 to compute.
 */
export class CpuBuffer implements DeviceBuffer {
  constructor(
    readonly dtype: DType,
    readonly length: number,
    readonly data: HostArray,
    /** The registered device whose backend made it: 'cpu', or a test device over a second CpuBackend. */
    readonly device: string = 'cpu',
  ) {}
}

const canShare = typeof SharedArrayBuffer !== 'undefined';

export function allocHost(dtype: DType, length: number): HostArray {
  const bytes = length * bytesPerElement(dtype);
  const raw = canShare ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
  switch (dtype) {
    case 'float32':
      return new Float32Array(raw);
    case 'bfloat16':
    case 'float16':
      return new Uint16Array(raw);
    case 'int32':
      return new Int32Array(raw);
    case 'int64':
      return new BigInt64Array(raw);
    case 'uint8':
      return new Uint8Array(raw);
  }
}

export function asCpu(b: DeviceBuffer): CpuBuffer {
  if (!(b instanceof CpuBuffer)) throw new Error(`A ${b.device} tensor reached the CPU backend; move it with .to('cpu') first.`);
  return b;
}

/** float32 values of [offset, offset+length): the storage itself for float32 (no copy), else a widened copy. */
export function readF32(b: DeviceBuffer, offset: number, length: number): Float32Array {
  const c = asCpu(b);
  switch (c.dtype) {
    case 'float32':
      return (c.data as Float32Array).subarray(offset, offset + length);
    case 'bfloat16':
      return bf16ArrayToF32((c.data as Uint16Array).subarray(offset, offset + length));
    case 'float16':
      return f16ArrayToF32((c.data as Uint16Array).subarray(offset, offset + length));
    case 'int32':
      return Float32Array.from((c.data as Int32Array).subarray(offset, offset + length));
    case 'int64':
      return Float32Array.from((c.data as BigInt64Array).subarray(offset, offset + length), (v) => Number(v));
    case 'uint8':
      return Float32Array.from((c.data as Uint8Array).subarray(offset, offset + length));
  }
}

/**
 * A float32 array to compute into for [offset, offset+length) of b: the storage itself for float32, else a
 * scratch array that commitF32 narrows into the storage afterwards.
 */
export function writableF32(b: DeviceBuffer, offset: number, length: number): Float32Array {
  const c = asCpu(b);
  if (c.dtype === 'float32') return (c.data as Float32Array).subarray(offset, offset + length);
  return new Float32Array(length);
}

export function commitF32(b: DeviceBuffer, offset: number, values: Float32Array): void {
  const c = asCpu(b);
  switch (c.dtype) {
    case 'float32':
      if (values.buffer !== c.data.buffer) (c.data as Float32Array).set(values, offset);
      return;
    case 'bfloat16':
      f32ArrayToBf16(values, (c.data as Uint16Array).subarray(offset, offset + values.length));
      return;
    case 'float16':
      f32ArrayToF16(values, (c.data as Uint16Array).subarray(offset, offset + values.length));
      return;
    case 'int32': {
      const d = c.data as Int32Array;
      for (let i = 0; i < values.length; i++) d[offset + i] = Math.trunc(values[i]!);
      return;
    }
    case 'int64': {
      const d = c.data as BigInt64Array;
      for (let i = 0; i < values.length; i++) d[offset + i] = BigInt(Math.trunc(values[i]!));
      return;
    }
    case 'uint8': {
      const d = c.data as Uint8Array;
      for (let i = 0; i < values.length; i++) d[offset + i] = values[i]!;
      return;
    }
  }
}

/** Integer view (ids, labels) as Int32Array. */
export function readI32(b: DeviceBuffer, offset: number, length: number): Int32Array {
  const c = asCpu(b);
  if (c.dtype === 'int32') return (c.data as Int32Array).subarray(offset, offset + length);
  if (c.dtype === 'int64') return Int32Array.from((c.data as BigInt64Array).subarray(offset, offset + length), (v) => Number(v));
  return Int32Array.from(readF32(b, offset, length));
}
