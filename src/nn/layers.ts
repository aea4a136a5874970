import { addScalar, embedding, linear, rmsNorm, to } from '../ops/index.js';
import type { Tensor } from '../tensor/tensor.js';
import { Module, type ForwardContext, type LinearLike } from './module.js';

/** y = x W^T + b with W [out, in] (PyTorch layout). */
export class Linear extends Module implements LinearLike {
  weight: Tensor;
  bias: Tensor | null;
  constructor(weight: Tensor, bias: Tensor | null = null) {
    super();
    this.weight = weight;
    this.bias = bias;
    this.registerParameter('weight', weight);
    if (bias) this.registerParameter('bias', bias);
  }
  get inFeatures(): number {
    return this.weight.shape[1]!;
  }
  get outFeatures(): number {
    return this.weight.shape[0]!;
  }
  forward(x: Tensor, _ctx?: ForwardContext): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

export class Embedding extends Module {
  weight: Tensor;
  constructor(weight: Tensor) {
    super();
    this.weight = weight;
    this.registerParameter('weight', weight);
  }
  /** ctx is unused here; embedding adapters (src/peft) read its per-row adapter names. */
  forward(ids: Tensor, _ctx?: ForwardContext): Tensor {
    return embedding(ids, this.weight);
  }
}

export class RMSNorm extends Module {
  weight: Tensor;
  /**
   * @param plusOne Gemma's flavour: scale by (1 + weight), computed in float32 as transformers does (the weight
   * as stored is what the checkpoint holds).
   */
  constructor(
    weight: Tensor,
    readonly eps: number,
    readonly plusOne = false,
  ) {
    super();
    this.weight = weight;
    this.registerParameter('weight', weight);
  }
  forward(x: Tensor): Tensor {
    const scale = this.plusOne ? addScalar(to(this.weight, { dtype: 'float32' }), 1) : this.weight;
    return rmsNorm(x, scale, this.eps);
  }
}
