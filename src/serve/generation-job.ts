import { invalidRequest } from './api-error.js';
import type { AdapterLease } from './adapter-registry.js';
import type { GenerationParams } from './generation-params.js';
import { OutputText } from './output-text.js';
import type { FinishReason } from './sequence.js';
import type { ServeContext } from './serve-context.js';

export interface Usage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
}

export interface GenerationResult {
  /** The whole output text (what the deltas added up to). */
  readonly text: string;
  readonly finishReason: FinishReason;
  readonly usage: Usage;
}

/** A running generation; `result` is null when the client went away first. */
export interface StartedGeneration {
  readonly result: Promise<GenerationResult | null>;
}

/**
 * One validated generation request holding its model: prepare() checks the lengths and leases the adapter (every
 * refusal happens here or in start(), before a response has begun), start() queues it.
 */
export class GenerationJob {
  private constructor(
    private readonly ctx: ServeContext,
    private readonly lease: AdapterLease,
    private readonly promptIds: readonly number[],
    private readonly maxTokens: number,
    private readonly params: GenerationParams,
  ) {}

  /** `promptParam` names the request field the prompt came from, for error messages. */
  static async prepare(ctx: ServeContext, model: string, promptIds: readonly number[], params: GenerationParams, promptParam: string): Promise<GenerationJob> {
    const { maxTokens: cap, contextLength } = ctx.limits;
    if (promptIds.length === 0) throw invalidRequest('The prompt is empty; send at least one token.', promptParam);
    const room = contextLength - promptIds.length;
    if (room < 1) {
      throw invalidRequest(`The prompt has ${promptIds.length} tokens and the model's context holds ${contextLength}; shorten it.`, promptParam, 'context_length_exceeded');
    }
    const maxTokens = params.maxTokens ?? Math.min(cap, room);
    if (maxTokens > cap) throw invalidRequest(`"max_tokens" is ${maxTokens}; this server allows at most ${cap}.`, 'max_tokens');
    if (maxTokens > room) {
      throw invalidRequest(
        `The prompt (${promptIds.length} tokens) plus max_tokens (${maxTokens}) exceeds the model's context of ${contextLength} tokens; lower max_tokens.`,
        'max_tokens',
        'context_length_exceeded',
      );
    }
    const lease = await ctx.adapters.acquire(model);
    return new GenerationJob(ctx, lease, promptIds, maxTokens, params);
  }

  get promptTokens(): number {
    return this.promptIds.length;
  }

  /**
   * Queues the generation; throws a 429 ApiError at once when the queue is full. `onText` receives text as it becomes
   * final (never a part of a stop string); the result settles when generation ends and rejects with an ApiError
   * when it fails.
   */
  start(signal: AbortSignal, onText: (delta: string) => void): StartedGeneration {
    const { ctx, params } = this;
    const output = new OutputText((ids) => ctx.tokenizer.decode(ids, { skipSpecialTokens: true }), params.stop);
    let outcome;
    try {
      outcome = ctx.scheduler.submit({
        promptIds: this.promptIds,
        adapterName: this.lease.rowName,
        maxTokens: this.maxTokens,
        sampling: params.sampling,
        stopTokenIds: ctx.stopTokenIds,
        timeoutMs: ctx.limits.requestTimeoutMs,
        signal,
        onToken: (token) => {
          const delta = output.push(token);
          if (delta) onText(delta);
          return output.stopped;
        },
      });
    } catch (error) {
      this.lease.release();
      throw error;
    }
    const result = outcome.then((o): GenerationResult | null => {
      this.lease.release();
      if (o.status === 'cancelled') {
        ctx.metrics.recordGeneration('cancelled');
        return null;
      }
      if (o.status === 'failed') {
        ctx.metrics.recordGeneration(o.error.code === 'request_timeout' ? 'timeout' : 'error');
        throw o.error;
      }
      const tail = output.finish();
      if (tail) onText(tail);
      // A stop string can also complete in the text held back until the end.
      const finishReason = output.stopped ? 'stop' : o.finishReason;
      ctx.metrics.recordGeneration(finishReason);
      return {
        text: output.text,
        finishReason,
        usage: { prompt_tokens: o.promptTokens, completion_tokens: o.completionTokens, total_tokens: o.promptTokens + o.completionTokens },
      };
    });
    return { result };
  }
}
