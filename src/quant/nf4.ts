import { bucketize, codeMidpoints } from './bucketize.js';
import { scaleBlockwise } from './block-scale.js';
import { QuantError } from './errors.js';

/**
 * The 16 NormalFloat-4 levels, ascending, as float32: bitsandbytes' `get_4bit_type("nf4")` table (quantiles of
 * N(0, 1) normalised to [-1, 1], with an exact zero at index 7). The 4-bit code of a value is its index here.
 */
export const NF4_CODE: Float32Array = Float32Array.of(
  -1.0,
  -0.6961928009986877,
  -0.5250730514526367,
  -0.39491748809814453,
  -0.28444138169288635,
  -0.18477343022823334,
  -0.09105003625154495,
  0.0,
  0.07958029955625534,
  0.16093020141124725,
  0.24611230194568634,
  0.33791524171829224,
  0.44070982933044434,
  0.5626170039176941,
  0.7229568362236023,
  1.0,
);

/** Blocksizes bitsandbytes accepts for 4-bit quantization (`quantize_4bit` / `dequantize_4bit`). */
export const NF4_BLOCKSIZES: readonly number[] = [32, 64, 128, 256, 512, 1024, 2048, 4096];

const NF4_BOUNDS = codeMidpoints(NF4_CODE);

/** Code of an odd element count's padding nibble: bitsandbytes pads the scaled values with 0.0 before packing. */
const NF4_PAD_CODE = bucketize(0, NF4_BOUNDS);

export function assertNf4Blocksize(blocksize: number): void {
  if (!NF4_BLOCKSIZES.includes(blocksize)) {
    throw new QuantError(`NF4 blocksize ${blocksize} is not supported; bitsandbytes accepts ${NF4_BLOCKSIZES.join(', ')}.`);
  }
}

export interface Nf4Quantized {
  /** ceil(n / 2) bytes; element 2i in the high nibble, 2i + 1 in the low nibble. */
  packed: Uint8Array;
  /** One float32 scale per block of `blocksize` elements (the last block may be partial). */
  absmax: Float32Array;
}

/** Blockwise NF4 quantization, bit-identical to bitsandbytes' pure-torch `quantize_4bit(..., quant_type="nf4")`. */
export function quantizeNf4(values: Float32Array, blocksize = 64): Nf4Quantized {
  assertNf4Blocksize(blocksize);
  const packed = new Uint8Array(Math.ceil(values.length / 2));
  // Blocksizes are even, so a block never splits a byte.
  const absmax = scaleBlockwise(values, blocksize, (scaled, start, length) => {
    let byte = start >>> 1;
    for (let i = 0; i + 1 < length; i += 2) {
      packed[byte++] = (bucketize(scaled[i]!, NF4_BOUNDS) << 4) | bucketize(scaled[i + 1]!, NF4_BOUNDS);
    }
    if (length % 2 === 1) packed[byte] = (bucketize(scaled[length - 1]!, NF4_BOUNDS) << 4) | NF4_PAD_CODE;
  });
  return { packed, absmax };
}

/**
 * out[i] = NF4_CODE[code of element i] * absmax[floor(i / blocksize)], one float32 rounding, as bitsandbytes'
 * `dequantize_4bit` computes before casting to the weight's dtype.
 */
export function dequantizeNf4(
  packed: Uint8Array,
  absmax: Float32Array,
  n: number,
  blocksize = 64,
  out: Float32Array = new Float32Array(n),
): Float32Array {
  assertNf4Blocksize(blocksize);
  if (packed.length !== Math.ceil(n / 2)) {
    throw new QuantError(`NF4 data for ${n} elements needs ${Math.ceil(n / 2)} packed bytes, got ${packed.length}.`);
  }
  if (absmax.length !== Math.ceil(n / blocksize)) {
    throw new QuantError(`NF4 data for ${n} elements in blocks of ${blocksize} needs ${Math.ceil(n / blocksize)} absmax values, got ${absmax.length}.`);
  }
  if (out.length < n) throw new QuantError(`The NF4 output buffer holds ${out.length} elements but ${n} are needed.`);
  for (let start = 0, b = 0; start < n; start += blocksize, b++) {
    const scale = absmax[b]!;
    const end = Math.min(start + blocksize, n);
    for (let i = start; i < end; i++) {
      const byte = packed[i >>> 1]!;
      out[i] = NF4_CODE[(i & 1) === 0 ? byte >>> 4 : byte & 0x0f]! * scale;
    }
  }
  return out;
}
