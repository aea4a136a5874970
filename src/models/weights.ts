import { decodeTensor } from '../io/decode.js';
import { FormatError } from '../io/errors.js';
import { FINITE_SCAN_MAX_ELEMENTS, firstNonFinite } from '../io/finite.js';
import { tensorFile, type TensorSource } from '../io/tensor-source.js';
import { fromHost, hostArray } from '../ops/index.js';
import type { HostArray } from '../tensor/buffer.js';
import { bf16ArrayToF32, bf16BitsToF32, bytesPerElement, f16ArrayToF32, f16BitsToF32, f32ArrayToBf16, f32ArrayToF16, isFloatDType, type DType } from '../tensor/dtype.js';
import { formatShape, numelOf, shapesEqual } from '../tensor/shape.js';
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
 * Reads one floating tensor from a checkpoint onto a device, converted to `dtype` (null: the stored dtype). Peak
 * host memory is one tensor's bytes plus its converted copy. An integer tensor, a shape other than `expectShape`
 * and a NaN or infinity are refused with a FormatError naming the file; `scan` "small" looks for the latter only in
 * tensors of up to FINITE_SCAN_MAX_ELEMENTS (base weights), "all" in every tensor (adapters).
 */
export async function loadTensor(
  source: TensorSource,
  name: string,
  dtype: DType | null,
  device: string,
  expectShape?: readonly number[],
  scan: 'small' | 'all' = 'small',
): Promise<Tensor> {
  const { data, shape, dtype: target } = await loadHostTensor(source, name, dtype, expectShape, scan);
  return fromHost(data, shape, target, device);
}

/** loadTensor's checks and conversion, leaving the values on the host (for tensors that are assembled there first). */
export async function loadHostTensor(
  source: TensorSource,
  name: string,
  dtype: DType | null,
  expectShape?: readonly number[],
  scan: 'small' | 'all' = 'small',
): Promise<{ data: HostArray; shape: readonly number[]; dtype: DType }> {
  const info = source.info(name);
  const file = tensorFile(source, name);
  if (expectShape && !shapesEqual(info.shape, expectShape)) {
    throw new FormatError(file, `${file}: tensor "${name}" has shape ${formatShape(info.shape)} but the config implies ${formatShape(expectShape)}; the weights do not belong to this config.json.`);
  }
  assertFloatTensor(file, name, info.dtype);
  const bytes = await source.read(name);
  if (scan === 'all' || numelOf(info.shape) <= FINITE_SCAN_MAX_ELEMENTS) assertFinite(file, name, info.dtype, bytes);
  const raw = decodeTensor(info.dtype, bytes) as HostArray;
  const target = dtype ?? info.dtype;
  return { data: convertHost(raw, info.dtype, target), shape: info.shape, dtype: target };
}

/** Weights are float32, bfloat16 or float16; an integer tensor where a weight belongs is refused before it is read. */
export function assertFloatTensor(file: string, name: string, dtype: DType): void {
  if (!isFloatDType(dtype)) {
    throw new FormatError(file, `${file}: tensor "${name}" is stored as ${dtype}, but weights must be float32, bfloat16 or float16; export the checkpoint with floating-point weights.`);
  }
}

/** Refuses stored values that are NaN or infinite, naming the first one. */
export function assertFinite(file: string, name: string, dtype: DType, bytes: Uint8Array): void {
  const at = firstNonFinite(dtype, bytes);
  if (at < 0) return;
  const value = decodeTensor(dtype, bytes.subarray(at * bytesPerElement(dtype), (at + 1) * bytesPerElement(dtype)));
  const v = dtype === 'float32' ? (value as Float32Array)[0]! : dtype === 'bfloat16' ? bf16BitsToF32((value as Uint16Array)[0]!) : f16BitsToF32((value as Uint16Array)[0]!);
  throw new FormatError(file, `${file}: tensor "${name}" holds ${v} at element ${at}; the weights are corrupt, so save or download them again.`);
}
