import { Rng } from '../tensor/random.js';
import { IGNORE_INDEX, type TokenizedExample } from './tokenize.js';

/** A right-padded batch in the shape CausalLM.run takes. */
export interface Batch {
  inputIds: number[][];
  labels: number[][];
  /** 1 on real tokens, 0 on padding; absent when no row is padded. */
  attentionMask?: number[][];
  /** Positions that carry a loss target after the causal shift (labels[1:] != -100), summed over rows. */
  targetTokens: number;
  /** Real (non-padding) tokens in the batch. */
  tokens: number;
}

/** Right-pads rows to the longest; padding gets `padId` as input, -100 as label and 0 in the attention mask. */
export function collate(examples: readonly TokenizedExample[], padId: number): Batch {
  const T = Math.max(...examples.map((e) => e.inputIds.length));
  const padded = examples.some((e) => e.inputIds.length < T);
  let targetTokens = 0;
  let tokens = 0;
  const inputIds: number[][] = [];
  const labels: number[][] = [];
  const attentionMask: number[][] = [];
  for (const e of examples) {
    const n = e.inputIds.length;
    tokens += n;
    for (let t = 1; t < n; t++) if (e.labels[t] !== IGNORE_INDEX) targetTokens++;
    inputIds.push([...e.inputIds, ...new Array<number>(T - n).fill(padId)]);
    labels.push([...e.labels, ...new Array<number>(T - n).fill(IGNORE_INDEX)]);
    attentionMask.push([...new Array<number>(n).fill(1), ...new Array<number>(T - n).fill(0)]);
  }
  return padded ? { inputIds, labels, attentionMask, targetTokens, tokens } : { inputIds, labels, targetTokens, tokens };
}

/**
 * Example indices of one epoch: a seeded permutation that depends only on (seed, epoch), so a resumed run
 * recomputes the order instead of storing it.
 */
export function epochOrder(count: number, seed: number, epoch: number, shuffle = true): number[] {
  const order = Array.from({ length: count }, (_, i) => i);
  if (!shuffle) return order;
  return new Rng((seed ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0).shuffle(order);
}

/** The micro-batches of one epoch (the last may be smaller), as lists of example indices. */
export function epochBatches(count: number, batchSize: number, seed: number, epoch: number, shuffle = true): number[][] {
  const order = epochOrder(count, seed, epoch, shuffle);
  const batches: number[][] = [];
  for (let i = 0; i < order.length; i += batchSize) batches.push(order.slice(i, i + batchSize));
  return batches;
}
