import type { KvCache } from '../models/kv-cache.js';
import type { ApiError } from './api-error.js';
import type { SamplingParams } from './generation-params.js';
import { TokenChooser } from './token-chooser.js';

/** One completion as the scheduler runs it. */
export interface SequenceRequest {
  readonly promptIds: readonly number[];
  /** "__base__" for the base model. */
  readonly adapterName: string;
  /** New tokens at most; the KV cache is sized for prompt + maxTokens. */
  readonly maxTokens: number;
  readonly sampling: SamplingParams;
  /** Ids that end the sequence with finish reason "stop" (EOS); they are counted but not passed to onToken. */
  readonly stopTokenIds: ReadonlySet<number>;
  /** Milliseconds from submission after which the sequence fails with a timeout. */
  readonly timeoutMs: number;
  /** Aborting it cancels the sequence at the next step boundary (client disconnect). */
  readonly signal?: AbortSignal;
  /** Receives every generated token except stop token ids; returning true ends the sequence (a stop string matched). */
  readonly onToken: (token: number) => boolean;
}

export type FinishReason = 'stop' | 'length';

export type SequenceOutcome =
  | { readonly status: 'finished'; readonly finishReason: FinishReason; readonly promptTokens: number; readonly completionTokens: number }
  | { readonly status: 'cancelled' }
  | { readonly status: 'failed'; readonly error: ApiError };

/** Scheduler-side state of a request: its cache, its token history and how it ends. */
export class Sequence {
  readonly tokens: number[];
  readonly chooser: TokenChooser;
  /** performance.now() deadline. */
  readonly deadline: number;
  cache: KvCache | null = null;
  /** The token to feed at the next decode step. */
  next = -1;
  generated = 0;
  outcome: SequenceOutcome | null = null;
  private resolve!: (o: SequenceOutcome) => void;
  readonly done: Promise<SequenceOutcome>;

  constructor(readonly request: SequenceRequest, now: number) {
    this.tokens = [...request.promptIds];
    this.chooser = new TokenChooser(request.sampling);
    this.deadline = now + request.timeoutMs;
    this.done = new Promise((r) => {
      this.resolve = r;
    });
  }

  /** Chooses and records the next token from this row's logits; returns false once the sequence has ended. */
  advance(logits: Float32Array): boolean {
    return this.record(this.chooser.choose(logits, this.tokens));
  }

  /**
   * advance() with the token already chosen: the row's argmax taken on the device, for a sequence whose chooser
   * choosesGreedy (what choose() would have returned from the full logits).
   */
  advanceWith(token: number): boolean {
    return this.record(this.chooser.accept(token));
  }

  private record(token: number): boolean {
    this.tokens.push(token);
    this.generated++;
    this.next = token;
    const r = this.request;
    if (r.stopTokenIds.has(token) || r.onToken(token)) this.end({ status: 'finished', finishReason: 'stop', ...this.counts() });
    else if (this.generated >= r.maxTokens) this.end({ status: 'finished', finishReason: 'length', ...this.counts() });
    return this.outcome === null;
  }

  /** Ends the sequence once (later calls are ignored) and frees its cache. */
  end(outcome: SequenceOutcome): void {
    if (this.outcome) return;
    this.outcome = outcome;
    this.cache?.dispose();
    this.cache = null;
    this.resolve(outcome);
  }

  private counts(): { promptTokens: number; completionTokens: number } {
    return { promptTokens: this.request.promptIds.length, completionTokens: this.generated };
  }
}
