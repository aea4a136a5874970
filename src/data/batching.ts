import { Rng } from '../tensor/random.js';
import { IGNORE_INDEX, type TokenizedExample } from './tokenize.js';

/** A right-padded batch in the shape CausalLM.run takes. */
export interface Batch {
  inputIds: number[][];
  labels: number[][];
  /** 1 on real tokens, 0 on padding; absent when no row is padded. */
  attentionMask?: number[][];
  /** Packed rows: per row, the lengths of the examples it holds (CausalLMInput.segmentLengths); absent otherwise. */
  segmentLengths?: number[][];
  /** Positions that carry a loss target after the causal shift (labels[1:] != -100), summed over rows. */
  targetTokens: number;
  /** Real (non-padding) tokens in the batch. */
  tokens: number;
}

/**
 * Right-pads rows to the longest; padding gets `padId` as input, -100 as label and 0 in the attention mask. Packed
 * rows (packExamples) pass their segment lengths on, and count targets within each example: an example's first
 * token is nobody's target.
 */
export function collate(examples: readonly TokenizedExample[], padId: number): Batch {
  const T = Math.max(...examples.map((e) => e.inputIds.length));
  const padded = examples.some((e) => e.inputIds.length < T);
  const packed = examples.some((e) => e.segmentLengths);
  let targetTokens = 0;
  let tokens = 0;
  const inputIds: number[][] = [];
  const labels: number[][] = [];
  const attentionMask: number[][] = [];
  const segmentLengths: number[][] = [];
  for (const e of examples) {
    const n = e.inputIds.length;
    tokens += n;
    const segments = e.segmentLengths ?? [n];
    if (segments.reduce((s, l) => s + l, 0) !== n) throw new Error(`a packed row's segment lengths add up to ${segments.reduce((s, l) => s + l, 0)}, not its ${n} tokens.`);
    let start = 0;
    for (const len of segments) {
      for (let t = start + 1; t < start + len; t++) if (e.labels[t] !== IGNORE_INDEX) targetTokens++;
      start += len;
    }
    segmentLengths.push([...segments]);
    inputIds.push([...e.inputIds, ...new Array<number>(T - n).fill(padId)]);
    labels.push([...e.labels, ...new Array<number>(T - n).fill(IGNORE_INDEX)]);
    attentionMask.push([...new Array<number>(n).fill(1), ...new Array<number>(T - n).fill(0)]);
  }
  return { inputIds, labels, ...(padded ? { attentionMask } : {}), ...(packed ? { segmentLengths } : {}), targetTokens, tokens };
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
