import { dequantizeBlockwise, quantizeBlockwise } from './blockwise.js';
import { createDynamicMap } from './dynamic-map.js';
import { QuantError } from './errors.js';
import { torchMeanF32 } from './torch-sum.js';

/** Blocksize bitsandbytes' `quantize_4bit(compress_statistics=True)` uses for the absmax values. */
export const NESTED_BLOCKSIZE = 256;

/** The signed 8-bit dynamic map the nested absmax is quantized with (bnb's default `create_dynamic_map()`). */
export const NESTED_CODE: Float32Array = createDynamicMap(true, 7, 8);

export interface DoubleQuantizedAbsmax {
  /** One 8-bit code per NF4 block: (absmax - offset) quantized against `nestedCode`. */
  codes: Uint8Array;
  /** float32 scale per nested block of `nestedBlocksize` codes. */
  nestedAbsmax: Float32Array;
  nestedCode: Float32Array;
  nestedBlocksize: number;
  /** float32 mean of the absmax values, subtracted before quantization. */
  offset: number;
}

/**
 * Double quantization as bitsandbytes' `quantize_4bit(compress_statistics=True)`: offset = torch's float32
 * mean of absmax, then (absmax - offset) rounded to float32 and quantized blockwise (256) with the signed
 * dynamic map.
 */
export function doubleQuantizeAbsmax(absmax: Float32Array): DoubleQuantizedAbsmax {
  if (absmax.length === 0) throw new QuantError('Cannot double-quantize an empty absmax: the weight has no elements.');
  const offset = torchMeanF32(absmax);
  const centered = new Float32Array(absmax.length);
  for (let i = 0; i < absmax.length; i++) centered[i] = absmax[i]! - offset;
  const { codes, absmax: nestedAbsmax } = quantizeBlockwise(centered, NESTED_CODE, NESTED_BLOCKSIZE);
  return { codes, nestedAbsmax, nestedCode: NESTED_CODE.slice(), nestedBlocksize: NESTED_BLOCKSIZE, offset };
}

/**
 * The float32 absmax bitsandbytes' `dequantize_4bit` uses for a nested state:
 * (nestedCode[code] * nestedAbsmax[block]) rounded to float32, then + offset rounded to float32.
 */
export function dequantizeNestedAbsmax(state: DoubleQuantizedAbsmax, out: Float32Array = new Float32Array(state.codes.length)): Float32Array {
  dequantizeBlockwise(state.codes, state.nestedAbsmax, state.nestedCode, state.nestedBlocksize, out);
  const offset = Math.fround(state.offset);
  for (let i = 0; i < state.codes.length; i++) out[i] = out[i]! + offset;
  return out;
}
