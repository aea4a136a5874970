import { Module } from '../nn/module.js';
import { add, addScalar, div, linear, matmul, mul, mulScalar, reshape, sqrt, square, sub, sum, to } from '../ops/index.js';
import { noGrad } from '../tensor/grad-mode.js';
import type { Tensor } from '../tensor/tensor.js';
import { baseBias, baseWeight } from './base-weight.js';
import type { LoraAdapterWeights, LoraLinear } from './lora-linear.js';
import type { LoraVariant, MergedWeight } from './lora-variant.js';

/** DoRA's trainable magnitude [out] of one adapter; PEFT's parameter name is `lora_magnitude_vector.<adapter>.weight`. */
export class DoraMagnitude extends Module {
  weight: Tensor;
  constructor(weight: Tensor) {
    super();
    this.weight = weight;
    this.registerParameter('weight', weight);
  }
}

/**
 * ||W + scaling * B A|| per output row [out], in float32 and detached from the graph: DoRA (section 4.3 of the
 * paper, and PEFT) treats the norm as a constant, so gradients reach A and B only through the adapter's output.
 */
export function doraWeightNorm(weight: Tensor, loraA: Tensor, loraB: Tensor, scaling: number): Tensor {
  return noGrad(() => {
    const delta = mulScalar(matmul(to(loraB, { dtype: 'float32' }), to(loraA, { dtype: 'float32' })), scaling);
    return rowNorm(add(to(weight, { dtype: 'float32' }), delta));
  });
}

/** Euclidean norm of every row of a matrix [rows, cols] -> [rows]. */
export function rowNorm(m: Tensor): Tensor {
  return sqrt(sum(square(m), 1));
}

/** DoRA (PEFT's DoraLinearVariant): the weight's direction from W + scaling B A, its row norms from a trained magnitude. */
export class DoraVariant implements LoraVariant {
  readonly name = 'dora';

  /** The magnitude from the weights, or (null there) the row norms of W + scaling B A, as PEFT does. */
  init(layer: LoraLinear, adapter: string, weights: LoraAdapterWeights): void {
    const magnitude = weights.magnitude ?? doraWeightNorm(baseWeight(layer.base_layer, layer.path), weights.a, weights.b, layer.settingsOf(adapter)!.scaling);
    layer.lora_magnitude_vector.set(adapter, new DoraMagnitude(magnitude));
  }

  /**
   * PEFT 0.21's DoRA output on top of `result`: with m the magnitude and n = ||W + scaling B A|| per output row
   * (detached), (m/n - 1) * base + (m/n) * scaling * B A x, where base is W x without bias: `result` minus the
   * bias, or W applied to the dropped-out input when dropout is active.
   */
  forward(layer: LoraLinear, adapter: string, x: Tensor, droppedOut: boolean, lora: Tensor, result: Tensor): Tensor {
    const { scaling } = layer.settingsOf(adapter)!;
    const weight = to(baseWeight(layer.base_layer, layer.path), { dtype: x.dtype });
    const norm = doraWeightNorm(weight, layer.lora_A.get(adapter)!.weight, layer.lora_B.get(adapter)!.weight, scaling);
    const factor = div(layer.lora_magnitude_vector.get(adapter)!.weight, norm);
    const bias = baseBias(layer.base_layer);
    const baseOut = droppedOut ? linear(x, weight) : bias ? sub(result, bias) : result;
    return add(mul(addScalar(factor, -1), baseOut), mul(factor, mulScalar(lora, scaling)));
  }

  /** Every row of W + scaling B A rescaled to the magnitude; the norms are kept, so unmerging divides by the same. */
  mergedWeight(layer: LoraLinear, adapter: string, updated: Tensor): MergedWeight {
    const norm = rowNorm(updated);
    return { weight: mul(magnitudeOverNorm(layer, adapter, norm), updated), mergeState: norm };
  }

  unmergedWeight(layer: LoraLinear, adapter: string, weight: Tensor, mergeState: Tensor | null): Tensor {
    return div(weight, magnitudeOverNorm(layer, adapter, mergeState!));
  }
}

/** magnitude / norm as a column [out, 1] that scales each row of the weight. */
function magnitudeOverNorm(layer: LoraLinear, adapter: string, norm: Tensor): Tensor {
  return reshape(div(to(layer.lora_magnitude_vector.get(adapter)!.weight, { dtype: 'float32' }), norm), [-1, 1]);
}
