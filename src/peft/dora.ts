import { Module } from '../nn/module.js';
import { add, matmul, mulScalar, sqrt, square, sum, to } from '../ops/index.js';
import { noGrad } from '../tensor/grad-mode.js';
import type { Tensor } from '../tensor/tensor.js';

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
