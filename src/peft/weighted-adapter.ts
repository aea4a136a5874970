import { fromHost, writeSlice } from '../ops/index.js';
import { noGrad } from '../tensor/grad-mode.js';
import type { Rng } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { ResolvedLoraConfig } from './config.js';
import { PeftError } from './errors.js';
import type { LoraLinear } from './lora-linear.js';
import { denseSvd, lowRankSvd, truncateSvd } from './svd.js';

/**
 * PEFT 0.21's add_weighted_adapter combination types (LoraModel.add_weighted_adapter and utils/merge_utils.py).
 * cat: A = [w_i s_i A_i] stacked, B = [B_i] side by side (ranks add up). linear, ties, dare_linear, dare_ties,
 * magnitude_prune: the merge method applied to the A's with weights sign(w_i s_i) sqrt|w_i s_i| and to the B's with
 * sqrt|w_i s_i| (equal ranks). The *svd types (svd = task arithmetic): the merge method applied to the full deltas
 * delta_i = s_i B_i A_i with weights w_i (as PEFT 0.21; earlier PEFT used w_i s_i), then B = U[:, :r] diag(S[:r]), A = Vh[:r]
 * of the delta's SVD, optionally clamped.
 */
export const COMBINATION_TYPES = ['svd', 'linear', 'cat', 'ties', 'ties_svd', 'dare_ties', 'dare_linear', 'dare_ties_svd', 'dare_linear_svd', 'magnitude_prune', 'magnitude_prune_svd'] as const;
export type CombinationType = (typeof COMBINATION_TYPES)[number];
export type MajoritySignMethod = 'total' | 'frequency';
/** torch.linalg.svd's drivers (cuSOLVER routines); every one computes the same decomposition. */
export const SVD_DRIVERS = ['gesvd', 'gesvdj', 'gesvda'] as const;
export type SvdDriver = (typeof SVD_DRIVERS)[number];

/** Merge options of one combination, already validated. */
export interface WeightedCombination {
  readonly type: CombinationType;
  readonly rank: number;
  readonly density?: number;
  readonly majoritySignMethod: MajoritySignMethod;
  readonly svdClamp?: number;
  /** DARE's Bernoulli masks (torch.bernoulli in PEFT); required for the dare types. */
  readonly rng?: Rng;
}

const EQUAL_RANK_TYPES: readonly CombinationType[] = ['linear', 'ties', 'dare_ties', 'dare_linear', 'magnitude_prune'];
const DENSITY_TYPES: readonly CombinationType[] = ['ties', 'ties_svd', 'dare_ties', 'dare_linear', 'dare_ties_svd', 'dare_linear_svd', 'magnitude_prune', 'magnitude_prune_svd'];

export function isCombinationType(t: unknown): t is CombinationType {
  return typeof t === 'string' && (COMBINATION_TYPES as readonly string[]).includes(t);
}

export function needsDensity(t: CombinationType): boolean {
  return DENSITY_TYPES.includes(t);
}

export function isDare(t: CombinationType): boolean {
  return t.startsWith('dare_');
}

/**
 * PEFT's _check_add_weighted_adapter and config copy: the combination type (linear for one adapter), the new rank
 * (= its alpha) and the union of the targets.
 */
export function weightedAdapterConfig(configs: readonly ResolvedLoraConfig[], combination: CombinationType, svdRank?: number): { config: ResolvedLoraConfig; type: CombinationType } {
  const type: CombinationType = configs.length === 1 ? 'linear' : combination;
  const ranks = configs.map((c) => Math.max(c.r, ...Object.values(c.rankPattern)));
  let rank: number;
  if (EQUAL_RANK_TYPES.includes(type)) {
    if (new Set(ranks).size !== 1) {
      throw new PeftError(`All adapters must have one rank (r) for combinationType "${type}" (as for linear, ties, dare_linear, dare_ties and magnitude_prune), but their ranks are ${ranks.join(', ')}; use "cat" or an svd type.`);
    }
    rank = ranks[0]!;
  } else if (type === 'cat') {
    rank = ranks.reduce((a, b) => a + b, 0);
  } else {
    rank = svdRank || Math.max(...ranks);
  }
  const targets = configs.map((c) => c.targetModules);
  let targetModules: ResolvedLoraConfig['targetModules'];
  if (targets.every((t) => typeof t === 'string')) targetModules = targets.map((t) => `(${t})`).join('|');
  else if (targets.every((t) => Array.isArray(t))) targetModules = [...new Set(targets.flatMap((t) => t as readonly string[]))];
  else throw new PeftError('All adapter configs must give target_modules the same way, but some give a regex string and others a list; combine adapters whose target_modules have the same form.');
  return { config: { ...configs[0]!, r: rank, loraAlpha: rank, targetModules, rankPattern: {}, alphaPattern: {} }, type };
}

// ---- merge_utils.py, over flat float64 arrays -------------------------------------------------------------------

/** magnitude_based_pruning: keeps the int(density * n) entries of largest |x| (torch.topk), zeroes the rest. */
function magnitudePrune(x: Float64Array, density: number): Float64Array {
  const k = Math.floor(density * x.length);
  const order = Array.from(x.keys()).sort((i, j) => Math.abs(x[j]!) - Math.abs(x[i]!) || i - j);
  const out = new Float64Array(x.length);
  for (let t = 0; t < k; t++) out[order[t]!] = x[order[t]!]!;
  return out;
}

/** random_pruning with rescale: x * bernoulli(density) / density. */
function randomPrune(x: Float64Array, density: number, rng: Rng): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = rng.next() < density ? x[i]! / density : 0;
  return out;
}

/** prune(): density >= 1 keeps everything (PEFT warns), density < 0 is refused. */
function prune(x: Float64Array, density: number, method: 'magnitude' | 'random', rng?: Rng): Float64Array {
  if (density >= 1) return x;
  if (density < 0) throw new PeftError(`Density should be >= 0, got ${density}.`);
  return method === 'magnitude' ? magnitudePrune(x, density) : randomPrune(x, density, rng!);
}

function weightedSum(tensors: readonly Float64Array[], weights: readonly number[]): Float64Array {
  const out = new Float64Array(tensors[0]!.length);
  tensors.forEach((t, k) => {
    for (let i = 0; i < out.length; i++) out[i]! += weights[k]! * t[i]!;
  });
  return out;
}

/** ties / dare_ties after pruning: sign election on the unweighted tensors, then the disjoint mean of the weighted ones. */
function disjointMerge(tensors: readonly Float64Array[], weights: readonly number[], method: MajoritySignMethod): Float64Array {
  const out = new Float64Array(tensors[0]!.length);
  for (let i = 0; i < out.length; i++) {
    let magnitude = 0;
    for (const t of tensors) magnitude += method === 'total' ? t[i]! : Math.sign(t[i]!);
    const majority = magnitude >= 0 ? 1 : -1;
    let sum = 0;
    let kept = 0;
    tensors.forEach((t, k) => {
      if (Math.sign(t[i]!) === majority) {
        sum += t[i]! * weights[k]!;
        kept++;
      }
    });
    out[i] = sum / Math.max(kept, 1);
  }
  return out;
}

/** task_arithmetic, magnitude_prune, ties, dare_linear, dare_ties of merge_utils.py. */
export function mergeTaskTensors(tensors: readonly Float64Array[], weights: readonly number[], c: WeightedCombination): Float64Array {
  const base = c.type.replace(/_svd$/, '');
  if (base === 'svd' || base === 'linear') return weightedSum(tensors, weights);
  const method = base.startsWith('dare') ? 'random' : 'magnitude';
  const pruned = tensors.map((t) => prune(t, c.density!, method, c.rng));
  if (base === 'ties' || base === 'dare_ties') return disjointMerge(pruned, weights, c.majoritySignMethod);
  return weightedSum(pruned, weights);
}

/** torch.quantile (linear interpolation) of the values. */
export function quantile(values: Float64Array, q: number): number {
  const sorted = Float64Array.from(values).sort();
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Dense SVD beyond this many multiply-adds per Jacobi sweep is slow; plain svd then factors B A without forming it. */
const DENSE_SVD_WORK = 1 << 27;

/** Fills adapter `name` of one layer (created with zeros) from the source adapters that this layer has. */
export async function fillWeightedAdapter(layer: LoraLinear, name: string, sources: readonly string[], weights: readonly number[], c: WeightedCombination): Promise<void> {
  const present = sources.flatMap((s, i) => (layer.hasAdapter(s) ? [{ name: s, weight: weights[i]!, scaling: layer.settingsOf(s)!.scaling, r: layer.settingsOf(s)!.r }] : []));
  if (present.length === 0) return;
  const out = layer.outFeatures;
  const inF = layer.inFeatures;
  const parts = await Promise.all(
    present.map(async (p) => ({ ...p, a: Float64Array.from(await layer.lora_A.get(p.name)!.weight.data()), b: Float64Array.from(await layer.lora_B.get(p.name)!.weight.data()) })),
  );
  const targetA = layer.lora_A.get(name)!.weight;
  const targetB = layer.lora_B.get(name)!.weight;
  let a: Float64Array;
  let b: Float64Array;
  let cols: number;
  if (c.type === 'cat') {
    cols = parts.reduce((s, p) => s + p.r, 0);
    a = new Float64Array(cols * inF);
    b = new Float64Array(out * cols);
    let col = 0;
    for (const p of parts) {
      const coef = p.weight * p.scaling;
      for (let i = 0; i < p.r * inF; i++) a[col * inF + i] = coef * p.a[i]!;
      for (let i = 0; i < out; i++) for (let j = 0; j < p.r; j++) b[i * cols + col + j] = p.b[i * p.r + j]!;
      col += p.r;
    }
  } else if (!c.type.endsWith('svd')) {
    for (const p of parts) {
      if (p.r !== targetA.shape[0]) throw new PeftError(`combinationType "${c.type}" needs equal ranks, but adapter "${p.name}" has rank ${p.r} at ${layer.path}; use "cat" or an svd type.`);
    }
    // The sign goes on A only, so that a negative weight subtracts the adapter instead of cancelling out.
    const ws = parts.map((p) => p.weight * p.scaling);
    a = mergeTaskTensors(parts.map((p) => p.a), ws.map((w) => Math.sqrt(Math.abs(w)) * (w >= 0 ? 1 : -1)), c);
    b = mergeTaskTensors(parts.map((p) => p.b), ws.map((w) => Math.sqrt(Math.abs(w))), c);
    cols = targetA.shape[0]!;
  } else {
    const k = Math.min(out, inF);
    if (c.rank > k) throw new PeftError(`svdRank ${c.rank} exceeds the rank an SVD of ${layer.path} [${out}, ${inF}] can have (${k}); choose svdRank <= ${k}.`);
    // PEFT 0.21 weights each delta_i = s_i B_i A_i (scaling included) by w_i alone (PEFT < 0.21 used w_i s_i).
    const ws = parts.map((p) => p.weight);
    let factors: { loraB: Float64Array; loraA: Float64Array };
    if (c.type === 'svd' && Math.min(out, inF) ** 2 * Math.max(out, inF) > DENSE_SVD_WORK) {
      // sum_i w_i (s_i B_i A_i) = [w_i s_i B_i] [A_i]: the same SVD, computed without forming the delta.
      const rank = parts.reduce((s, p) => s + p.r, 0);
      const bc = new Float64Array(out * rank);
      const ac = new Float64Array(rank * inF);
      let col = 0;
      parts.forEach((p, i) => {
        for (let row = 0; row < out; row++) for (let j = 0; j < p.r; j++) bc[row * rank + col + j] = ws[i]! * p.scaling * p.b[row * p.r + j]!;
        ac.set(p.a, col * inF);
        col += p.r;
      });
      factors = lowRankSvd(bc, ac, out, rank, inF, c.rank);
    } else {
      const deltas = parts.map((p) => {
        const d = new Float64Array(out * inF);
        for (let i = 0; i < out; i++) {
          for (let t = 0; t < p.r; t++) {
            const bv = p.b[i * p.r + t]! * p.scaling;
            if (bv === 0) continue;
            for (let j = 0; j < inF; j++) d[i * inF + j]! += bv * p.a[t * inF + j]!;
          }
        }
        return d;
      });
      factors = truncateSvd(denseSvd(mergeTaskTensors(deltas, ws, c), out, inF), c.rank);
    }
    if (c.svdClamp !== undefined) {
      const dist = new Float64Array(factors.loraB.length + factors.loraA.length);
      dist.set(factors.loraB);
      dist.set(factors.loraA, factors.loraB.length);
      const hi = quantile(dist, c.svdClamp);
      const clamp = (x: Float64Array) => x.map((v) => Math.min(Math.max(v, -hi), hi));
      factors = { loraB: clamp(factors.loraB), loraA: clamp(factors.loraA) };
    }
    a = factors.loraA;
    b = factors.loraB;
    cols = c.rank;
  }
  noGrad(() =>
    scope(() => {
      writeSlice(targetA, 0, 0, fromHost(Float32Array.from(a), [cols, inF], 'float32', targetA.device));
      writeSlice(targetB, 0, 0, fromHost(Float32Array.from(b), [out, cols], 'float32', targetB.device));
    }),
  );
}
