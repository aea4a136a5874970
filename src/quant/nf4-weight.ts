import {
  bf16ArrayToF32,
  f16ArrayToF32,
  f32ArrayToBf16,
  f32ArrayToF16,
} from '../tensor/dtype.js';
import { formatShape, numelOf } from '../tensor/shape.js';
import { dequantizeNestedAbsmax, doubleQuantizeAbsmax, type DoubleQuantizedAbsmax } from './double-quant.js';
import { QuantError } from './errors.js';
import { dequantizeNf4, quantizeNf4 } from './nf4.js';

/** Weight dtypes bitsandbytes quantizes to 4 bits; dequantization returns the same dtype. */
export type Nf4SourceDType = 'float32' | 'bfloat16' | 'float16';

/** Host values of one floating dtype; bfloat16 and float16 are their raw 16-bit patterns. */
export type HostFloatData =
  | { readonly dtype: 'float32'; readonly data: Float32Array }
  | { readonly dtype: 'bfloat16' | 'float16'; readonly data: Uint16Array };

/** Per-block scales: plain float32, or double-quantized to 8-bit codes (bnb's compress_statistics). */
export type Nf4Absmax =
  | { readonly nested: false; readonly absmax: Float32Array }
  | ({ readonly nested: true } & Readonly<DoubleQuantizedAbsmax>);

/** What bitsandbytes' QuantState holds for an NF4 weight. */
export interface Nf4QuantState {
  readonly quantType: 'nf4';
  readonly blocksize: number;
  readonly dtype: Nf4SourceDType;
  /** Shape of the dense weight, e.g. [out_features, in_features]. */
  readonly shape: readonly number[];
  readonly absmax: Nf4Absmax;
}

export interface Nf4Weight {
  /** ceil(numel / 2) bytes, two codes per byte, first element in the high nibble. */
  readonly packed: Uint8Array;
  readonly state: Nf4QuantState;
}

export interface QuantizeNf4WeightOptions {
  /** Elements per absmax block; default 64. */
  blocksize?: number;
  /** Quantize the absmax values too (bnb_4bit_use_double_quant); default false, as bnb's quantize_4bit. */
  doubleQuant?: boolean;
}

/** bitsandbytes quantizes every input dtype in float32: bfloat16 and float16 are widened exactly first. */
export function toFloat32(source: HostFloatData): Float32Array {
  switch (source.dtype) {
    case 'float32':
      return source.data;
    case 'bfloat16':
      return bf16ArrayToF32(source.data);
    case 'float16':
      return f16ArrayToF32(source.data);
  }
}

/** bitsandbytes' `quantize_4bit(A, blocksize, compress_statistics, quant_type="nf4")` on its pure-torch path. */
export function quantizeNf4Weight(source: HostFloatData, shape: readonly number[], options: QuantizeNf4WeightOptions = {}): Nf4Weight {
  const n = numelOf(shape);
  if (source.data.length !== n) {
    throw new QuantError(`Cannot quantize a weight of shape ${formatShape(shape)} from ${source.data.length} values; it needs ${n}.`);
  }
  if (n === 0) throw new QuantError(`Cannot quantize a weight of shape ${formatShape(shape)}: it has no elements.`);
  const { packed, absmax } = quantizeNf4(toFloat32(source), options.blocksize ?? 64);
  const scales: Nf4Absmax = options.doubleQuant ? { nested: true, ...doubleQuantizeAbsmax(absmax) } : { nested: false, absmax };
  return { packed, state: { quantType: 'nf4', blocksize: options.blocksize ?? 64, dtype: source.dtype, shape: [...shape], absmax: scales } };
}

/** The float32 per-block scales the NF4 codes multiply, undoing double quantization when present. */
export function nf4BlockAbsmax(state: Nf4QuantState): Float32Array {
  return state.absmax.nested ? dequantizeNestedAbsmax(state.absmax) : state.absmax.absmax;
}

/**
 * bitsandbytes' `dequantize_4bit`: code * absmax in float32, then rounded (nearest even) to the weight's dtype.
 */
export function dequantizeNf4Weight(weight: Nf4Weight): HostFloatData {
  const { state } = weight;
  const values = dequantizeNf4(weight.packed, nf4BlockAbsmax(state), numelOf(state.shape), state.blocksize);
  switch (state.dtype) {
    case 'float32':
      return { dtype: 'float32', data: values };
    case 'bfloat16':
      return { dtype: 'bfloat16', data: f32ArrayToBf16(values) };
    case 'float16':
      return { dtype: 'float16', data: f32ArrayToF16(values) };
  }
}
