import type { DType } from '../tensor/dtype.js';
import { decodeTensor } from './decode.js';

/**
 * Tensors of at most this many elements are scanned for NaN and infinity when loaded: norms, biases, adapters and
 * small models. The scan reads exponent bits, about 3 ms per 2^20 elements on one core; base weights above it are
 * left unscanned so loading a multi-billion-parameter model does not pay tens of seconds for it.
 */
export const FINITE_SCAN_MAX_ELEMENTS = 1 << 20;

/** The exponent bits of each float dtype: a value is NaN or infinite exactly when all of them are set. */
const EXPONENT_MASK = { float32: 0x7f800000, bfloat16: 0x7f80, float16: 0x7c00 } as const;

/**
 * Index of the first NaN or infinity among the little-endian values of `dtype` in `bytes`, or -1 when every value
 * is finite (integer dtypes are always finite).
 */
export function firstNonFinite(dtype: DType, bytes: Uint8Array): number {
  if (dtype !== 'float32' && dtype !== 'bfloat16' && dtype !== 'float16') return -1;
  const values = decodeTensor(dtype, bytes);
  const bits = dtype === 'float32' ? new Uint32Array(values.buffer, values.byteOffset, values.length) : (values as Uint16Array);
  const mask = EXPONENT_MASK[dtype];
  for (let i = 0; i < bits.length; i++) if ((bits[i]! & mask) === mask) return i;
  return -1;
}
