import type { Rng } from '../tensor/random.js';

export interface SamplingOptions {
  /** false: greedy (argmax). */
  doSample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  /** vLLM's min_p: tokens whose probability is below minP times the top token's are dropped; 0 is off. */
  minP?: number;
  /** > 1 discourages tokens already in the sequence (transformers' RepetitionPenaltyLogitsProcessor). */
  repetitionPenalty?: number;
}

/** transformers' repetition penalty: divide positive scores, multiply negative ones, once per distinct token. */
export function applyRepetitionPenalty(logits: Float32Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  const done = new Set<number>();
  for (const id of seen) {
    if (done.has(id) || id < 0 || id >= logits.length) continue;
    done.add(id);
    const s = logits[id]!;
    logits[id] = s < 0 ? s * penalty : s / penalty;
  }
}

export function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** Whether pickToken takes the argmax: no sampling asked for, or a temperature that is not positive. */
export function picksGreedily(options: SamplingOptions): boolean {
  return !options.doSample || !((options.temperature ?? 1) > 0);
}

/**
 * Picks the next token from one row of logits: greedy, or temperature -> top-k -> min-p -> top-p -> multinomial,
 * the order transformers applies its warpers in (vLLM applies min-p before top-k; the two commute, each keeping a
 * prefix of the tokens sorted by logit).
 */
export function pickToken(logits: Float32Array, options: SamplingOptions, rng: Rng): number {
  if (picksGreedily(options)) return argmax(logits);
  const temperature = options.temperature ?? 1;
  // `|| 0`: two banned (-Infinity) logits compare equal rather than NaN, which would leave the order undefined.
  const ids = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || 0);
  let keep = ids.length;
  if (options.topK && options.topK > 0) keep = Math.min(keep, options.topK);
  const mx = logits[ids[0]!]!;
  const probs = new Float64Array(keep);
  let total = 0;
  for (let i = 0; i < keep; i++) {
    probs[i] = Math.exp((logits[ids[i]!]! - mx) / temperature);
    total += probs[i]!;
  }
  if (options.minP !== undefined && options.minP > 0) {
    // probs[i] is p_i / p_max before normalisation, so the threshold needs no total; probs[0] = 1 always stays.
    let cut = 1;
    while (cut < keep && probs[cut]! >= options.minP) cut++;
    keep = cut;
    total = prefixSum(probs, keep);
  }
  if (options.topP !== undefined && options.topP < 1) {
    // Keep the smallest prefix whose mass reaches topP (at least one token).
    let acc = 0;
    let cut = keep;
    for (let i = 0; i < keep; i++) {
      acc += probs[i]! / total;
      if (acc >= options.topP) {
        cut = i + 1;
        break;
      }
    }
    keep = cut;
    total = prefixSum(probs, keep);
  }
  let r = rng.next() * total;
  for (let i = 0; i < keep; i++) {
    r -= probs[i]!;
    if (r < 0) return ids[i]!;
  }
  return ids[keep - 1]!;
}

function prefixSum(values: Float64Array, length: number): number {
  let total = 0;
  for (let i = 0; i < length; i++) total += values[i]!;
  return total;
}
