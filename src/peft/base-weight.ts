import { Linear } from '../nn/layers.js';
import type { LinearLike } from '../nn/module.js';
import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { PeftError } from './errors.js';

/**
 * What a non-dense base layer (quant/'s 4-bit linear) offers so that DoRA can read its weight: the weight
 * [out, in] dequantized to the compute dtype, and its bias.
 */
export interface DequantizingLinear extends LinearLike {
  dequantizedWeight(): Tensor;
  readonly bias: Tensor | null;
  /** The dtype its GEMM runs in (inputs are cast to it, outputs cast back). */
  readonly computeDtype: DType;
}

export function isDequantizing(layer: LinearLike): layer is DequantizingLinear {
  return 'dequantizedWeight' in layer && typeof layer.dequantizedWeight === 'function';
}

/** The base layer's weight [out, in] as a dense tensor (dequantized when the layer is quantized). */
export function baseWeight(layer: LinearLike, path: string): Tensor {
  if (layer instanceof Linear) return layer.weight;
  if (isDequantizing(layer)) return layer.dequantizedWeight();
  throw new PeftError(`DoRA needs the weight of ${path}, but its ${layer.constructor.name} exposes neither a weight nor dequantizedWeight(); use plain LoRA there.`);
}

export function baseBias(layer: LinearLike): Tensor | null {
  if (layer instanceof Linear || isDequantizing(layer)) return layer.bias;
  return null;
}

/** The base layer as a dense Linear whose weight can be changed in place (merging); quantized layers are refused. */
export function denseBase(layer: LinearLike, path: string, action: string): Linear {
  if (layer instanceof Linear) return layer;
  throw new PeftError(`Cannot ${action} ${path}: its base layer is a ${layer.constructor.name}, not a dense Linear; load the base model unquantized (e.g. dtype "float32" or "bfloat16") to ${action}.`);
}
