import { decodeTensor } from '../io/decode.js';
import type { TensorSource } from '../io/tensor-source.js';
import { fromHost, hostArray } from '../ops/index.js';
import type { HostArray } from '../tensor/buffer.js';
import { bf16ArrayToF32, f16ArrayToF32, f32ArrayToBf16, f32ArrayToF16, isFloatDType, type DType } from '../tensor/dtype.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

/** Converts host data between float dtypes (raw 16-bit patterns for bf16/f16), rounding to nearest even. */
export function convertHost(data: HostArray, from: DType, to: DType): HostArray {
  if (from === to) return data;
  if (!isFloatDType(from) || !isFloatDType(to)) {
    return hostArray(to, from === 'int64' ? Array.from(data as BigInt64Array, Number) : (data as ArrayLike<number>));
  }
  const f32 = from === 'float32' ? (data as Float32Array) : from === 'bfloat16' ? bf16ArrayToF32(data as Uint16Array) : f16ArrayToF32(data as Uint16Array);
  if (to === 'float32') return f32;
  return to === 'bfloat16' ? f32ArrayToBf16(f32) : f32ArrayToF16(f32);
}

/**
 * Reads one tensor from a checkpoint onto a device, converting floating tensors to `dtype` (integer tensors
 * keep theirs). Peak host memory is one tensor's bytes plus its converted copy.
 */
export async function loadTensor(source: TensorSource, name: string, dtype: DType | null, device: string, expectShape?: readonly number[]): Promise<Tensor> {
  const info = source.info(name);
  if (expectShape && (info.shape.length !== expectShape.length || info.shape.some((d, i) => d !== expectShape[i]))) {
    throw new Error(`Checkpoint tensor ${name} has shape ${formatShape(info.shape)} but the config implies ${formatShape(expectShape)}; the weights do not belong to this config.json.`);
  }
  const raw = decodeTensor(info.dtype, await source.read(name)) as HostArray;
  const target = dtype && isFloatDType(info.dtype) ? dtype : info.dtype;
  return fromHost(convertHost(raw, info.dtype, target), info.shape, target, device);
}
