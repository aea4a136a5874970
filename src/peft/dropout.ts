import { fromHost, mul } from '../ops/index.js';
import type { Rng } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';

/** Inverted dropout: each element is zeroed with probability p and the survivors are scaled by 1/(1-p). */
export function dropout(x: Tensor, p: number, rng: Rng): Tensor {
  const keep = 1 / (1 - p);
  const mask = new Float32Array(x.numel);
  for (let i = 0; i < mask.length; i++) mask[i] = rng.next() < p ? 0 : keep;
  return mul(x, fromHost(mask, x.shape, 'float32', x.device));
}
