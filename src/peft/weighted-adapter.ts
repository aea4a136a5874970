import { add, cat, fromHost, mulScalar, to, writeSlice } from '../ops/index.js';
import { noGrad } from '../tensor/grad-mode.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ResolvedLoraConfig } from './config.js';
import { PeftError } from './errors.js';
import type { LoraLinear } from './lora-linear.js';
import { lowRankSvd } from './svd.js';

/**
 * PEFT's add_weighted_adapter combinations. linear: A = sum sign_i sqrt|w_i s_i| A_i, B = sum sqrt|w_i s_i| B_i
 * (equal ranks); cat: A = [w_i s_i A_i] stacked, B = [B_i] side by side (ranks add up, and B A = sum w_i s_i B_i A_i
 * exactly); svd: the best rank-k approximation of sum w_i s_i delta_i (s_i the adapter's scaling, w_i its weight).
 */
export type CombinationType = 'linear' | 'cat' | 'svd';

/** PEFT's _check_add_weighted_adapter and config copy: rank, alpha (= rank) and the union of the targets. */
export function weightedAdapterConfig(configs: readonly ResolvedLoraConfig[], combination: CombinationType, svdRank?: number): ResolvedLoraConfig {
  const ranks = configs.map((c) => Math.max(c.r, ...Object.values(c.rankPattern)));
  let rank: number;
  if (combination === 'linear') {
    if (new Set(ranks).size !== 1) throw new PeftError(`A linear combination needs adapters of one rank, but their ranks are ${ranks.join(', ')}; use combinationType "cat" or "svd".`);
    rank = ranks[0]!;
  } else if (combination === 'cat') {
    rank = ranks.reduce((a, b) => a + b, 0);
  } else {
    rank = svdRank ?? Math.max(...ranks);
  }
  const targets = configs.map((c) => c.targetModules);
  let targetModules: ResolvedLoraConfig['targetModules'];
  if (targets.every((t) => typeof t === 'string')) targetModules = targets.map((t) => `(${t})`).join('|');
  else if (targets.every((t) => Array.isArray(t))) targetModules = [...new Set(targets.flatMap((t) => t as readonly string[]))];
  else throw new PeftError('The adapters mix target_modules given as a regex string with ones given as a list; combine adapters whose target_modules have the same form.');
  return { ...configs[0]!, r: rank, loraAlpha: rank, targetModules, rankPattern: {}, alphaPattern: {} };
}

/** Fills adapter `name` of one layer (created with zeros) from the source adapters that this layer has. */
export async function fillWeightedAdapter(layer: LoraLinear, name: string, sources: readonly string[], weights: readonly number[], combination: CombinationType): Promise<void> {
  const present = sources.flatMap((s, i) => (layer.hasAdapter(s) ? [{ name: s, weight: weights[i]!, scaling: layer.settingsOf(s)!.scaling }] : []));
  if (present.length === 0) return;
  const targetA = layer.lora_A.get(name)!.weight;
  const targetB = layer.lora_B.get(name)!.weight;
  const a = (s: string) => to(layer.lora_A.get(s)!.weight, { dtype: 'float32' });
  const b = (s: string) => to(layer.lora_B.get(s)!.weight, { dtype: 'float32' });
  if (combination === 'svd') {
    await fillBySvd(layer, targetA, targetB, present);
    return;
  }
  noGrad(() =>
    scope(() => {
      if (combination === 'cat') {
        writeSlice(targetA, 0, 0, cat(present.map((p) => mulScalar(a(p.name), p.weight * p.scaling)), 0));
        writeSlice(targetB, 1, 0, cat(present.map((p) => b(p.name)), 1));
        return;
      }
      for (const p of present) {
        if (a(p.name).shape[0] !== targetA.shape[0]) {
          throw new PeftError(`A linear combination needs equal ranks, but adapter "${p.name}" has rank ${a(p.name).shape[0]} at ${layer.path}; use combinationType "cat" or "svd".`);
        }
      }
      // The sign goes on A only, so that a negative weight subtracts the adapter instead of cancelling out.
      const coef = present.map((p) => Math.sqrt(Math.abs(p.weight * p.scaling)));
      const sign = present.map((p) => (p.weight * p.scaling >= 0 ? 1 : -1));
      writeSlice(targetA, 0, 0, present.map((p, i) => mulScalar(a(p.name), sign[i]! * coef[i]!)).reduce((x, y) => add(x, y)));
      writeSlice(targetB, 0, 0, present.map((p, i) => mulScalar(b(p.name), coef[i]!)).reduce((x, y) => add(x, y)));
    }),
  );
}

/**
 * PEFT weights each delta_i = s_i B_i A_i (scaling included) by w_i s_i, so the scaling enters twice; kept as is
 * so that combined adapters equal PEFT's. The sum is factored as [w_i s_i^2 B_i] [A_i] and never formed densely.
 */
async function fillBySvd(layer: LoraLinear, targetA: Tensor, targetB: Tensor, present: readonly { name: string; weight: number; scaling: number }[]): Promise<void> {
  const out = layer.outFeatures;
  const inF = layer.inFeatures;
  const parts = await Promise.all(
    present.map(async (p) => ({
      coef: p.weight * p.scaling * p.scaling,
      a: await layer.lora_A.get(p.name)!.weight.data(),
      b: await layer.lora_B.get(p.name)!.weight.data(),
      r: layer.settingsOf(p.name)!.r,
    })),
  );
  const rank = parts.reduce((s, p) => s + p.r, 0);
  const bc = new Float64Array(out * rank);
  const ac = new Float64Array(rank * inF);
  let col = 0;
  for (const p of parts) {
    for (let i = 0; i < out; i++) for (let j = 0; j < p.r; j++) bc[i * rank + col + j] = p.coef * p.b[i * p.r + j]!;
    ac.set(p.a, col * inF);
    col += p.r;
  }
  const k = targetA.shape[0]!;
  const { loraB, loraA } = lowRankSvd(bc, ac, out, rank, inF, k);
  noGrad(() =>
    scope(() => {
      writeSlice(targetB, 0, 0, fromHost(Float32Array.from(loraB), [out, k], 'float32', targetB.device));
      writeSlice(targetA, 0, 0, fromHost(Float32Array.from(loraA), [k, inF], 'float32', targetA.device));
    }),
  );
}
