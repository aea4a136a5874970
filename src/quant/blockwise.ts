import { bucketize, codeMidpoints } from './bucketize.js';
import { scaleBlockwise } from './block-scale.js';
import { QuantError } from './errors.js';

/**
 * Blocksizes of bitsandbytes' 8-bit blockwise quantization on every backend (its CUDA kernels accept only these;
 * the pure-torch fallback would take any positive size).
 */
export const BLOCKWISE_BLOCKSIZES: readonly number[] = [64, 128, 256, 512, 1024, 2048, 4096];

function assertBlockwiseArgs(code: Float32Array, blocksize: number): void {
  if (!BLOCKWISE_BLOCKSIZES.includes(blocksize)) {
    throw new QuantError(`8-bit blockwise blocksize ${blocksize} is not supported; bitsandbytes accepts ${BLOCKWISE_BLOCKSIZES.join(', ')}.`);
  }
  if (code.length === 0 || code.length > 256) {
    throw new QuantError(`An 8-bit quantization code needs 1 to 256 entries, got ${code.length}.`);
  }
}

export interface BlockwiseQuantized {
  /** One code index per element. */
  codes: Uint8Array;
  /** One float32 scale per block (the last block may be partial). */
  absmax: Float32Array;
}

/**
 * bitsandbytes' pure-torch `quantize_blockwise`: per block, the index of the nearest entry of `code` (sorted
 * ascending) to x / absmax, ties going to the lower entry.
 */
export function quantizeBlockwise(values: Float32Array, code: Float32Array, blocksize = 256): BlockwiseQuantized {
  assertBlockwiseArgs(code, blocksize);
  const bounds = codeMidpoints(code);
  const codes = new Uint8Array(values.length);
  const absmax = scaleBlockwise(values, blocksize, (scaled, start, length) => {
    for (let i = 0; i < length; i++) codes[start + i] = bucketize(scaled[i]!, bounds);
  });
  return { codes, absmax };
}

/** out[i] = code[codes[i]] * absmax[floor(i / blocksize)] in float32, as bitsandbytes' `dequantize_blockwise`. */
export function dequantizeBlockwise(
  codes: Uint8Array,
  absmax: Float32Array,
  code: Float32Array,
  blocksize = 256,
  out: Float32Array = new Float32Array(codes.length),
): Float32Array {
  assertBlockwiseArgs(code, blocksize);
  const n = codes.length;
  if (absmax.length !== Math.ceil(n / blocksize)) {
    throw new QuantError(`8-bit data of ${n} elements in blocks of ${blocksize} needs ${Math.ceil(n / blocksize)} absmax values, got ${absmax.length}.`);
  }
  if (out.length < n) throw new QuantError(`The 8-bit output buffer holds ${out.length} elements but ${n} are needed.`);
  for (let start = 0, b = 0; start < n; start += blocksize, b++) {
    const scale = absmax[b]!;
    const end = Math.min(start + blocksize, n);
    for (let i = start; i < end; i++) {
      const value = code[codes[i]!];
      if (value === undefined) throw new QuantError(`8-bit code index ${codes[i]} at element ${i} is outside the ${code.length}-entry code.`);
      out[i] = value * scale;
    }
  }
  return out;
}
