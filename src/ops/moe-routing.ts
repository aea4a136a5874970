import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { fromHost, to } from './creation.js';
import { backendOf } from './engine.js';
import { compact } from './shape-ops.js';

/**
 * Which experts each token goes to, and the same assignments grouped by expert for the grouped GEMMs. An
 * assignment is (token n, slot s): the token's s-th choice (slots by descending score).
 */
export interface ExpertRouting {
  readonly tokens: number;
  readonly topK: number;
  readonly experts: number;
  /** int32 [tokens * topK], token-major: n * experts + e for each token's chosen experts (index into scores flattened). */
  readonly choice: Tensor;
  /** int32 [tokens * topK], grouped by expert (expert 0's first, tokens ascending within one): each assignment's token. */
  readonly token: Tensor;
  /** int32 [tokens * topK], grouped as `token`: each assignment's position n * topK + s in `choice`. */
  readonly slot: Tensor;
  /** int32 [tokens * topK], grouped as `token`: each assignment's expert. */
  readonly expert: Tensor;
  /** `token` on the host (a mixed-adapter batch picks each assignment's adapter by its token's row). */
  readonly hostToken: Int32Array;
  /** Assignments per expert, in expert order: the grouped GEMMs' group sizes. */
  readonly groupSizes: readonly number[];
}

/**
 * torch.topk(scores, k) per row of scores [tokens, experts] (ties to the lower expert index), then a counting
 * sort of the assignments by expert. The scores are read back to the host (Backend.toHostNow): the group sizes
 * decide the GEMM launches. No gradient: weights are gathered from `scores` through `choice` by the caller.
 */
export function routeTopK(scores: Tensor, k: number): ExpertRouting {
  if (scores.rank !== 2) throw new Error(`routeTopK takes scores [tokens, experts], got ${formatShape(scores.shape)}.`);
  const [tokens, experts] = scores.shape as [number, number];
  if (!Number.isInteger(k) || k < 1 || k > experts) throw new Error(`routeTopK: top-k must be 1 to ${experts} (the experts), got ${k}.`);
  const s = compact(to(scores, { dtype: 'float32' }));
  const host = backendOf(s).toHostNow(s.buffer, 0, tokens * experts) as Float32Array;
  const A = tokens * k;
  const choice = new Int32Array(A);
  const chosen = new Int32Array(A);
  const counts = new Array<number>(experts).fill(0);
  const taken = new Uint8Array(experts);
  for (let n = 0; n < tokens; n++) {
    taken.fill(0);
    for (let slot = 0; slot < k; slot++) {
      let best = -1;
      let bestValue = -Infinity;
      for (let e = 0; e < experts; e++) {
        const v = host[n * experts + e]!;
        if (!taken[e] && (best < 0 || v > bestValue)) {
          best = e;
          bestValue = v;
        }
      }
      taken[best] = 1;
      chosen[n * k + slot] = best;
      choice[n * k + slot] = n * experts + best;
      counts[best]!++;
    }
  }
  const start = new Array<number>(experts);
  let at = 0;
  for (let e = 0; e < experts; e++) {
    start[e] = at;
    at += counts[e]!;
  }
  const token = new Int32Array(A);
  const slotOf = new Int32Array(A);
  const expert = new Int32Array(A);
  for (let a = 0; a < A; a++) {
    const e = chosen[a]!;
    const p = start[e]!++;
    token[p] = Math.floor(a / k);
    slotOf[p] = a;
    expert[p] = e;
  }
  const device = scores.device;
  const ints = (data: Int32Array) => fromHost(data, [A], 'int32', device);
  return { tokens, topK: k, experts, choice: ints(choice), token: ints(token), slot: ints(slotOf), expert: ints(expert), hostToken: token, groupSizes: counts };
}
