import { noGrad } from '../tensor/grad-mode.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { makeResult } from './engine.js';
import { linear, matmul } from './matmul.js';
import { sumToShape } from './reduce.js';

/**
 * y = x W^T + b for a frozen weight that is not kept between the forward and the backward pass: `materialize`
 * builds W [out, in] (e.g. by dequantizing 4-bit codes) in the forward pass and again in the backward pass, so
 * the autograd graph holds no dense copy of W. The weight gets no gradient; dx = g W and db = sum(g).
 * Each materialized W is released as soon as the product that needed it is computed.
 */
export function frozenWeightLinear(x: Tensor, materialize: () => Tensor, bias: Tensor | null = null): Tensor {
  const y = noGrad(() => scope(() => linear(x, materialize(), bias)));
  const inputs = bias ? [x, bias] : [x];
  const out = makeResult(y.buffer, y.shape, 'frozenWeightLinear', inputs, (g) => [
    x.requiresGrad ? scope(() => sumToShape(matmul(g, materialize()), x.shape)) : null,
    bias?.requiresGrad ? sumToShape(g, bias.shape) : null,
  ], y.strides, y.offset);
  y.dispose();
  return out;
}
