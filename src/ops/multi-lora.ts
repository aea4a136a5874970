import type { LoraAdapterView } from '../backend/backend.js';
import { isGradEnabled } from '../tensor/grad-mode.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { makeResult, sameDevice } from './engine.js';
import { contiguous } from './shape-ops.js';
import { kernels } from './composed-kernels.js';

/** One adapter of a multi-adapter batch: A [rank, in], B [out, rank] and the factor on B A x. */
export interface MultiLoraAdapter {
  readonly a: Tensor;
  readonly b: Tensor;
  readonly scale: number;
}

/**
 * The part of a multiLoraLinear call that depends only on the adapters and on which row uses which: checked once,
 * reused while neither changes (a decode step asks for the same plan, layer by layer, as the step before). Holds
 * the adapters' tensors, so the caller must build a new plan when it swaps one (see LoraLinear's plan cache).
 */
export interface MultiLoraPlan {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Batch rows (dim 0 of x) the plan covers. */
  readonly batchRows: number;
  readonly adapters: readonly MultiLoraAdapter[];
  readonly views: readonly LoraAdapterView[];
  readonly rowAdapter: readonly number[];
  /** rowAdapter repeated over each row's positions, by positions per row. */
  readonly expanded: Map<number, Int32Array>;
  /** The device every adapter tensor is on (null without adapters). */
  readonly device: string | null;
}

/** An adapter prepareMultiLora has checked for features inF -> outF, and its contiguous view for the backend. */
interface CheckedAdapter {
  readonly inF: number;
  readonly outF: number;
  readonly view: LoraAdapterView;
}

/**
 * Adapters already checked, by object: a caller that keeps its MultiLoraAdapter objects (LoraLinear keeps one per
 * adapter name) builds a plan for a new batch composition without checking each adapter's shapes and layout again,
 * which matters in serving, where the composition changes whenever a request joins or leaves the batch. Safe to
 * reuse because an adapter's tensors, and their shapes, strides and buffers, never change; a disposed tensor is
 * caught when the plan is made.
 */
const checkedAdapters = new WeakMap<MultiLoraAdapter, CheckedAdapter>();

function checkAdapter(adapter: MultiLoraAdapter, inF: number, outF: number): LoraAdapterView {
  const known = checkedAdapters.get(adapter);
  if (known && known.inF === inF && known.outF === outF && !adapter.a.disposed && !adapter.b.disposed) return known.view;
  const { a, b, scale } = adapter;
  if (a.rank !== 2 || b.rank !== 2 || a.shape[1] !== inF || b.shape[0] !== outF || b.shape[1] !== a.shape[0]) {
    throw new Error(`multiLoraLinear: A ${formatShape(a.shape)} and B ${formatShape(b.shape)} do not map ${inF} features to ${outF} (A must be [r, ${inF}], B [${outF}, r]).`);
  }
  sameDevice(a, b);
  const ac = contiguous(a);
  const bc = contiguous(b);
  const view: LoraAdapterView = { a: ac.buffer, aOffset: ac.offset, b: bc.buffer, bOffset: bc.offset, rank: a.shape[0]!, scale };
  // A copy made to be contiguous belongs to this plan alone: only views of the adapter's own tensors are kept.
  if (ac === a && bc === b) checkedAdapters.set(adapter, { inF, outF, view });
  return view;
}

/** Checks adapters and the row-to-adapter map for features inF -> outF; see multiLoraLinear. */
export function prepareMultiLora(adapters: readonly MultiLoraAdapter[], rowAdapter: readonly number[], inF: number, outF: number): MultiLoraPlan {
  for (let i = 0; i < rowAdapter.length; i++) {
    const s = rowAdapter[i]!;
    if (!Number.isInteger(s) || s < -1 || s >= adapters.length) throw new Error(`multiLoraLinear: row ${i} names adapter ${s}; use -1 or an index below ${adapters.length}.`);
  }
  const views = adapters.map((adapter) => checkAdapter(adapter, inF, outF));
  // checkAdapter put each adapter's A and B on one device; sameDevice puts every adapter on the first one's.
  const device = adapters.length > 0 ? sameDevice(...adapters.map(({ a }) => a)).device : null;
  return { inFeatures: inF, outFeatures: outF, batchRows: rowAdapter.length, adapters, views, rowAdapter: [...rowAdapter], expanded: new Map(), device };
}

/**
 * Multi-adapter LoRA for serving (the BGMV/SGMV idea of Punica and S-LoRA): with s = rowAdapter[i] for batch row i
 * (dim 0 of x and base; every position of that row uses it),
 *   out[i] = base[i] + scale_s * (x[i] A_s^T) B_s^T,   or base[i] where s = -1,
 * where base = the frozen layer's output, computed once for the whole batch. Every row's low-rank product is one
 * backend call together, reading each adapter's weights where they live; no adapter is merged into the base.
 * Inference only: it records no gradient, and refuses inputs that would need one (use the per-adapter path).
 * `adapters` and `rowAdapter` may come as a plan from prepareMultiLora instead.
 */
export function multiLoraLinear(x: Tensor, base: Tensor, adapters: readonly MultiLoraAdapter[] | MultiLoraPlan, rowAdapter?: readonly number[], consumeBase = false): Tensor {
  const plan = isPlan(adapters) ? adapters : prepareMultiLora(adapters, rowAdapter ?? [], x.shape[x.rank - 1]!, base.shape[base.rank - 1]!);
  return multiLoraLinearGroup(x, [{ base, plan }], consumeBase)[0]!;
}

/** One projection of a multiLoraLinearGroup call: its base output and its plan. */
export interface MultiLoraProjection {
  readonly base: Tensor;
  readonly plan: MultiLoraPlan;
}

/**
 * multiLoraLinear for several projections of the same input at once (q, k and v of attention; gate and up of an
 * MLP), each with its own base output and plan: one backend call for all of them, and each result has the bits
 * multiLoraLinear would give it alone. With `consumeBase`, a result may be written over its base output's buffer
 * (when that base is contiguous from the buffer's start) instead of a new one: for callers that made the base for
 * this call alone and never read it again (LoraLinear's serving path), saving an allocation per projection.
 */
export function multiLoraLinearGroup(x: Tensor, projections: readonly MultiLoraProjection[], consumeBase = false): Tensor[] {
  const inF = x.shape[x.rank - 1]!;
  const rows = x.numel / Math.max(inF, 1);
  if (projections.length === 0) return [];
  const backend = sameDevice(x, ...projections.map(({ base }) => base));
  for (const { base, plan } of projections) {
    const outF = base.shape[base.rank - 1]!;
    if (x.rank < 2 || base.rank !== x.rank || base.shape.some((d, i) => i < x.rank - 1 && d !== x.shape[i])) {
      throw new Error(`multiLoraLinear: the input ${formatShape(x.shape)} and the base output ${formatShape(base.shape)} must agree on every dimension but the last.`);
    }
    if (plan.inFeatures !== inF || plan.outFeatures !== outF) throw new Error(`multiLoraLinear: a plan for ${plan.inFeatures} -> ${plan.outFeatures} features was given ${inF} -> ${outF}.`);
    if (plan.batchRows !== x.shape[0]) throw new Error(`multiLoraLinear: ${plan.batchRows} adapter indices for a batch of ${x.shape[0]} rows.`);
    if (multiLoraNeedsGrad(x, base, plan)) {
      throw new Error('multiLoraLinear records no gradient; run it under noGrad(), or use the per-adapter path when training.');
    }
    if (plan.device !== null && plan.device !== x.device) throw new Error(`Tensors on ${x.device} and ${plan.device} were combined; move them to one device first.`);
  }
  const xc = contiguous(x);
  const bases = projections.map(({ base }) => contiguous(base));
  const outs = bases.map((base) => (consumeBase && base.offset === 0 ? base.buffer : backend.allocUninitialized(base.dtype, base.numel)));
  kernels(backend).multiLora({
    rows, inFeatures: inF, x: xc.buffer, xOffset: xc.offset,
    outputs: projections.map(({ plan }, i) => ({
      outFeatures: plan.outFeatures, base: bases[i]!.buffer, baseOffset: bases[i]!.offset, out: outs[i]!,
      adapters: plan.views, rowAdapter: expandedRows(plan, rows / plan.batchRows),
    })),
  });
  return outs.map((out, i) => makeResult(out, projections[i]!.base.shape, 'multiLoraLinear', [], null));
}

/** Whether multiLoraLinear would have a gradient to record for this input, base and plan (it refuses then). */
export function multiLoraNeedsGrad(x: Tensor, base: Tensor, plan: MultiLoraPlan): boolean {
  return isGradEnabled() && (x.requiresGrad || base.requiresGrad || plan.adapters.some(({ a, b }) => a.requiresGrad || b.requiresGrad));
}

/** The plan's rowAdapter repeated over each row's positions, kept per positions-per-row. */
function expandedRows(plan: MultiLoraPlan, perRow: number): Int32Array {
  let expanded = plan.expanded.get(perRow);
  if (!expanded) {
    expanded = new Int32Array(plan.batchRows * perRow);
    for (const [i, s] of plan.rowAdapter.entries()) expanded.fill(s, i * perRow, (i + 1) * perRow);
    plan.expanded.set(perRow, expanded);
  }
  return expanded;
}

function isPlan(a: readonly MultiLoraAdapter[] | MultiLoraPlan): a is MultiLoraPlan {
  return !Array.isArray(a);
}
