import { cat, mulScalar, reshape, square, sum } from '../ops/index.js';
import { noGrad } from '../tensor/grad-mode.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * torch.nn.utils.clip_grad_norm_ with norm_type 2: total = ||(||g_1||, ..., ||g_n||)||_2, every gradient scaled
 * by min(1, maxNorm / (total + 1e-6)). Returns the total norm before clipping (NaN/Infinity pass through, as in
 * torch without error_if_nonfinite). Parameters without a gradient are ignored. One device read per call.
 */
export async function clipGradNorm(params: Iterable<Tensor>, maxNorm: number): Promise<number> {
  const withGrad = [...params].filter((p): p is Tensor & { grad: Tensor } => p.grad !== null);
  if (withGrad.length === 0) return 0;
  const squares = scope(() => noGrad(() => cat(withGrad.map((p) => reshape(sum(square(p.grad)), [1])), 0)));
  const perTensor = await squares.data();
  squares.dispose();
  let total = 0;
  for (const s of perTensor) total += s;
  total = Math.sqrt(total);
  const coef = Math.min(1, maxNorm / (total + 1e-6));
  if (coef < 1 || Number.isNaN(coef)) {
    noGrad(() => {
      for (const p of withGrad) {
        const scaled = mulScalar(p.grad, coef).keep();
        p.grad.dispose();
        p.grad = scaled;
      }
    });
  }
  return total;
}
