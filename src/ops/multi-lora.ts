import type { LoraAdapterView } from '../backend/backend.js';
import { isGradEnabled } from '../tensor/grad-mode.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { makeResult, sameDevice } from './engine.js';
import { contiguous } from './shape-ops.js';

/** One adapter of a multi-adapter batch: A [rank, in], B [out, rank] and the factor on B A x. */
export interface MultiLoraAdapter {
  readonly a: Tensor;
  readonly b: Tensor;
  readonly scale: number;
}

/**
 * Multi-adapter LoRA for serving (the BGMV/SGMV idea of Punica and S-LoRA): with s = rowAdapter[i] for batch row i
 * (dim 0 of x and base; every position of that row uses it),
 *   out[i] = base[i] + scale_s * (x[i] A_s^T) B_s^T,   or base[i] where s = -1,
 * where base = the frozen layer's output, computed once for the whole batch. Every row's low-rank product is one
 * backend call together, reading each adapter's weights where they live; no adapter is merged into the base.
 * Inference only: it records no gradient, and refuses inputs that would need one (use the per-adapter path).
 */
export function multiLoraLinear(x: Tensor, base: Tensor, adapters: readonly MultiLoraAdapter[], rowAdapter: readonly number[]): Tensor {
  const inF = x.shape[x.rank - 1]!;
  const outF = base.shape[base.rank - 1]!;
  const rows = x.numel / Math.max(inF, 1);
  if (x.rank < 2 || base.rank !== x.rank || base.shape.some((d, i) => i < x.rank - 1 && d !== x.shape[i])) {
    throw new Error(`multiLoraLinear: the input ${formatShape(x.shape)} and the base output ${formatShape(base.shape)} must agree on every dimension but the last.`);
  }
  if (rowAdapter.length !== x.shape[0]) throw new Error(`multiLoraLinear: ${rowAdapter.length} adapter indices for a batch of ${x.shape[0]} rows.`);
  for (const [i, s] of rowAdapter.entries()) {
    if (!Number.isInteger(s) || s < -1 || s >= adapters.length) throw new Error(`multiLoraLinear: row ${i} names adapter ${s}; use -1 or an index below ${adapters.length}.`);
  }
  for (const { a, b } of adapters) {
    if (a.rank !== 2 || b.rank !== 2 || a.shape[1] !== inF || b.shape[0] !== outF || b.shape[1] !== a.shape[0]) {
      throw new Error(`multiLoraLinear: A ${formatShape(a.shape)} and B ${formatShape(b.shape)} do not map ${inF} features to ${outF} (A must be [r, ${inF}], B [${outF}, r]).`);
    }
  }
  const weights = adapters.flatMap(({ a, b }) => [a, b]);
  if (isGradEnabled() && [x, base, ...weights].some((t) => t.requiresGrad)) {
    throw new Error('multiLoraLinear records no gradient; run it under noGrad(), or use the per-adapter path when training.');
  }
  const backend = sameDevice(x, base, ...weights);
  const xc = contiguous(x);
  const basec = contiguous(base);
  const views: LoraAdapterView[] = adapters.map(({ a, b, scale }) => {
    const ac = contiguous(a);
    const bc = contiguous(b);
    return { a: ac.buffer, aOffset: ac.offset, b: bc.buffer, bOffset: bc.offset, rank: a.shape[0]!, scale };
  });
  const perRow = rows / x.shape[0]!;
  const expanded = new Int32Array(rows);
  rowAdapter.forEach((s, i) => expanded.fill(s, i * perRow, (i + 1) * perRow));
  const out = backend.allocUninitialized(base.dtype, base.numel);
  backend.multiLora({
    rows, inFeatures: inF, outFeatures: outF,
    x: xc.buffer, xOffset: xc.offset, base: basec.buffer, baseOffset: basec.offset, out,
    adapters: views, rowAdapter: expanded,
  });
  return makeResult(out, base.shape, 'multiLoraLinear', [], null);
}
