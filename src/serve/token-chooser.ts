import { randomInt } from 'node:crypto';
import { applyRepetitionPenalty, pickToken, picksGreedily, type SamplingOptions } from '../generate/sampling.js';
import { Rng } from '../tensor/random.js';
import type { SamplingParams } from './generation-params.js';
import { applyTokenMask, type TokenMask } from './grammar/token-mask.js';

/** OpenAI's logit_bias value that bans a token outright rather than lowering its logit by 100. */
const BAN = -100;

/**
 * Picks one sequence's tokens. All of its state (generator, token counts) belongs to the sequence, so the choice
 * depends only on this row's logits and history, never on the other rows of the batch.
 */
export class TokenChooser {
  private readonly rng: Rng;
  private readonly options: SamplingOptions;
  /** How often each generated token occurred (presence/frequency penalties). */
  private readonly counts = new Map<number, number>();
  private readonly penalised: boolean;
  /** Tokens chosen so far (min_tokens). */
  private chosen = 0;

  /**
   * `stopTokenIds`: the ids that end this sequence, masked while fewer than min_tokens tokens are chosen;
   * `constrained`: a grammar masks every choice, so choose() gets its mask and the device argmax is never used.
   */
  constructor(
    private readonly params: SamplingParams,
    private readonly stopTokenIds: ReadonlySet<number>,
    private readonly constrained = false,
  ) {
    this.rng = new Rng(params.seed ?? randomInt(0, 2 ** 32));
    this.options = { doSample: params.temperature > 0, temperature: params.temperature, topK: params.topK, topP: params.topP, minP: params.minP };
    this.penalised = params.repetitionPenalty !== 1 || params.presencePenalty !== 0 || params.frequencyPenalty !== 0;
  }

  /**
   * True when the next choose() is a plain argmax of the raw logits (temperature 0, no penalty, bias or grammar,
   * no stop token masked; the generator is never drawn from): the scheduler then takes the row's argmax on the
   * device and passes it to accept().
   */
  get choosesGreedy(): boolean {
    return picksGreedily(this.options) && !this.penalised && !this.constrained && this.params.logitBias.size === 0 && !this.masksStopTokens();
  }

  /** Records a token that a greedy chooser would have chosen (the device's argmax), exactly as choose() records its own. */
  accept(token: number): number {
    if (!this.choosesGreedy) throw new Error('accept() is only for greedy choosers; sampled, penalised and biased rows need choose().');
    return this.record(token);
  }

  /**
   * `logits` is this row's slice of the step's output; `sequence` is prompt plus generated tokens; `mask` the
   * grammar's allowed tokens (constrained choosers only). Null when the grammar, with the bans of logit_bias and
   * min_tokens, leaves no token: nothing is chosen or recorded.
   */
  choose(logits: Float32Array, sequence: readonly number[], mask: TokenMask | null = null): number | null {
    const p = this.params;
    const masking = this.masksStopTokens();
    const scores = this.penalised || p.logitBias.size > 0 || masking || mask ? logits.slice() : logits;
    if (p.repetitionPenalty !== 1) applyRepetitionPenalty(scores, sequence, p.repetitionPenalty);
    if (p.presencePenalty !== 0 || p.frequencyPenalty !== 0) {
      // OpenAI: logit -= count * frequency_penalty + (count > 0) * presence_penalty, over generated tokens.
      for (const [id, count] of this.counts) scores[id] = scores[id]! - count * p.frequencyPenalty - p.presencePenalty;
    }
    for (const [id, bias] of p.logitBias) scores[id] = bias === BAN ? -Infinity : scores[id]! + bias;
    if (masking) for (const id of this.stopTokenIds) scores[id] = -Infinity;
    if (mask) {
      applyTokenMask(scores, mask);
      if (!scores.some((v) => v > -Infinity)) return null;
    }
    return this.record(pickToken(scores, this.options, this.rng));
  }

  private masksStopTokens(): boolean {
    return this.chosen < this.params.minTokens && this.stopTokenIds.size > 0;
  }

  private record(token: number): number {
    this.counts.set(token, (this.counts.get(token) ?? 0) + 1);
    this.chosen++;
    return token;
  }
}
