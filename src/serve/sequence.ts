import type { KvCache } from '../models/kv-cache.js';
import type { ApiError } from './api-error.js';
import type { SamplingParams } from './generation-params.js';
import type { Guide, RowGrammar } from './grammar/row-grammar.js';
import type { TokenMask } from './grammar/token-mask.js';
import { TokenChooser } from './token-chooser.js';
import type { TokenLogprob } from './token-logprobs.js';

/** One completion as the scheduler runs it. */
export interface SequenceRequest {
  readonly promptIds: readonly number[];
  /** "__base__" for the base model. */
  readonly adapterName: string;
  /**
   * What the prefix cache keys this sequence's KV blocks by (prefix caching shares blocks only within one
   * namespace); default: adapterName. The server passes one per load of an adapter, so a name reused for other
   * weights never meets the old blocks.
   */
  readonly prefixNamespace?: string;
  /** New tokens at most; the KV cache is sized for prompt + maxTokens. */
  readonly maxTokens: number;
  readonly sampling: SamplingParams;
  /**
   * Ids that end the sequence with finish reason "stop" (EOS unless ignored, and stop_token_ids); they are counted,
   * and passed to onToken only with `emitStopToken` (include_stop_str_in_output).
   */
  readonly stopTokenIds: ReadonlySet<number>;
  readonly emitStopToken: boolean;
  /** Log-probabilities for every generated token with this many alternatives each; null: none computed. */
  readonly logprobs: number | null;
  /** Milliseconds from submission after which the sequence fails with a timeout. */
  readonly timeoutMs: number;
  /** Aborting it cancels the sequence at the next step boundary (client disconnect). */
  readonly signal?: AbortSignal;
  /**
   * Receives every generated token but stop token ids (see emitStopToken), with its log-probabilities when asked
   * for; returning true ends the sequence (a stop string matched).
   */
  readonly onToken: (token: number, logprob: TokenLogprob | null) => boolean;
  /** Told when the sequence leaves the queue and of every token it generates (metrics). */
  readonly observer?: SequenceObserver;
  /** The grammar every token must keep to (structured output); absent: none. */
  readonly guide?: Guide;
}

export interface SequenceObserver {
  /** The sequence's prefill is about to run; `cachedTokens` of its prompt were found in the prefix cache. */
  scheduled(cachedTokens: number): void;
  /** A token was generated, stop tokens included. */
  generated(): void;
}

export type FinishReason = 'stop' | 'length';

export type SequenceOutcome =
  | {
      readonly status: 'finished';
      readonly finishReason: FinishReason;
      readonly promptTokens: number;
      readonly completionTokens: number;
      /** Prompt tokens whose keys and values came from the prefix cache instead of being computed. */
      readonly cachedTokens: number;
      /** The generated tokens' mean log-probability (best_of ranks by it); null when none were computed. */
      readonly meanLogprob: number | null;
    }
  | { readonly status: 'cancelled' }
  | { readonly status: 'failed'; readonly error: ApiError };

/** Scheduler-side state of a request: its cache, its token history and how it ends. */
export class Sequence {
  readonly tokens: number[];
  readonly chooser: TokenChooser;
  /** performance.now() deadline. */
  readonly deadline: number;
  cache: KvCache | null = null;
  /** The sequence's matcher in its request's grammar, from startGrammar() until the sequence ends. */
  grammar: RowGrammar | null = null;
  /** The token to feed at the next decode step. */
  next = -1;
  generated = 0;
  /** Prompt tokens shared from the prefix cache (set at prefill). */
  cachedTokens = 0;
  private logprobSum = 0;
  private scored = 0;
  outcome: SequenceOutcome | null = null;
  private resolve!: (o: SequenceOutcome) => void;
  readonly done: Promise<SequenceOutcome>;

  constructor(readonly request: SequenceRequest, now: number) {
    this.tokens = [...request.promptIds];
    this.chooser = new TokenChooser(request.sampling, request.stopTokenIds, request.guide !== undefined);
    this.deadline = now + request.timeoutMs;
    this.done = new Promise((r) => {
      this.resolve = r;
    });
  }

  /** Starts the sequence's matcher in its request's grammar, if it has one (before its first token is chosen). */
  async startGrammar(): Promise<void> {
    const guide = this.request.guide;
    if (!guide) return;
    const grammar = await guide.start(this.request.stopTokenIds);
    if (this.outcome) grammar.dispose();
    else this.grammar = grammar;
  }

  /**
   * Chooses the next token from this row's logits, within `mask` for a constrained sequence (the chooser's state
   * advances; record() must follow). Where the grammar leaves no token the sequence ends here: with finish reason
   * "stop" when its text is a complete match (ignore_eos, or min_tokens holding back the stop token the grammar
   * asks for), else "length" (logit_bias banned every token the grammar allows); null is returned.
   */
  choose(logits: Float32Array, mask: TokenMask | null): number | null {
    const token = this.chooser.choose(logits, this.tokens, mask);
    if (token === null) this.end({ status: 'finished', finishReason: this.grammar?.complete ? 'stop' : 'length', ...this.counts() });
    return token;
  }

  /**
   * choose() with the token already chosen: the row's argmax taken on the device, for a sequence whose chooser
   * choosesGreedy (what choose() would have returned from the full logits).
   */
  accept(token: number): number {
    return this.chooser.accept(token);
  }

  /** Appends a chosen token; returns false once the sequence has ended. */
  record(token: number, logprob: TokenLogprob | null): boolean {
    this.grammar?.accept(token);
    this.tokens.push(token);
    this.generated++;
    this.next = token;
    this.request.observer?.generated();
    if (logprob) {
      this.logprobSum += logprob.logprob;
      this.scored++;
    }
    const r = this.request;
    const stopToken = r.stopTokenIds.has(token);
    const stopString = (!stopToken || r.emitStopToken) && r.onToken(token, logprob);
    if (stopToken || stopString) this.end({ status: 'finished', finishReason: 'stop', ...this.counts() });
    else if (this.generated >= r.maxTokens) this.end({ status: 'finished', finishReason: 'length', ...this.counts() });
    return this.outcome === null;
  }

  /**
   * Ends the sequence once (later calls are ignored) and frees its cache; a finished one first publishes the full
   * blocks of its prompt and generated tokens (with prefix caching), for a later turn that repeats them.
   */
  end(outcome: SequenceOutcome): void {
    if (this.outcome) return;
    this.outcome = outcome;
    if (outcome.status === 'finished') this.cache?.publish(this.tokens);
    this.cache?.dispose();
    this.cache = null;
    this.grammar?.dispose();
    this.grammar = null;
    this.resolve(outcome);
  }

  private counts(): { promptTokens: number; completionTokens: number; cachedTokens: number; meanLogprob: number | null } {
    return { promptTokens: this.request.promptIds.length, completionTokens: this.generated, cachedTokens: this.cachedTokens, meanLogprob: this.scored > 0 ? this.logprobSum / this.scored : null };
  }
}
