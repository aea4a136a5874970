import { randomInt } from 'node:crypto';
import { KV_BLOCK_SIZE } from '../models/kv-cache.js';
import { invalidRequest, type ApiError } from './api-error.js';
import type { AdapterLease } from './adapter-registry.js';
import { ChoiceOutput, type ChoiceDelta, type Echo } from './choice-output.js';
import type { GenerationParams } from './generation-params.js';
import type { Guide } from './grammar/row-grammar.js';
import { LogprobEntries, type LogprobEntry } from './logprob-entry.js';
import { OutputText, type Detokenize } from './output-text.js';
import type { FinishReason, SequenceOutcome, SequenceRequest } from './sequence.js';
import type { ServeContext } from './serve-context.js';
import type { TokenLogprob } from './token-logprobs.js';

export interface Usage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
  /** With prefix caching on: the prompt tokens whose keys and values the first sequence found cached. */
  readonly prompt_tokens_details?: { readonly cached_tokens: number };
}

export interface ChoiceResult {
  readonly index: number;
  /** The whole text of the choice (what its deltas added up to). */
  readonly text: string;
  readonly finishReason: FinishReason;
  /** null when the request asked for none. */
  readonly logprobs: readonly LogprobEntry[] | null;
}

export interface GenerationResult {
  readonly choices: readonly ChoiceResult[];
  /** completion_tokens counts every sequence generated, best_of ones not returned included. */
  readonly usage: Usage;
}

/** A running generation; `result` is null when the client went away first. */
export interface StartedGeneration {
  readonly result: Promise<GenerationResult | null>;
}

/**
 * One validated generation request holding its model: prepare() checks the lengths, leases the adapter and scores
 * an echoed prompt (every refusal happens here or in start(), before a response has begun), start() queues its
 * sequences: best_of of them (n unless completions' best_of says more), sequence i seeded with seed + i, so choice i
 * samples what the same request with n = 1 and seed + i samples.
 */
export class GenerationJob {
  private constructor(
    private readonly ctx: ServeContext,
    /** The model as the request named it (metrics' model_name). */
    private readonly model: string,
    /** performance.now() when prepare() began: the request's arrival for its latency metrics. */
    private readonly arrivedAt: number,
    private readonly lease: AdapterLease,
    private readonly promptIds: readonly number[],
    private readonly maxTokens: number,
    private readonly params: GenerationParams,
    private readonly echo: Echo | null,
    private readonly guide: Guide | null,
  ) {}

  /**
   * `promptParam` names the request field the prompt came from, for error messages; `promptText` is what echo
   * prepends (the prompt as sent, or its decoded ids).
   */
  static async prepare(ctx: ServeContext, model: string, promptIds: readonly number[], params: GenerationParams, promptParam: string, promptText?: string): Promise<GenerationJob> {
    const arrivedAt = performance.now();
    const { maxTokens: cap, contextLength } = ctx.limits;
    if (promptIds.length === 0) throw invalidRequest('The prompt is empty; send at least one token.', promptParam);
    const room = contextLength - promptIds.length;
    if (room < 1) {
      throw invalidRequest(`The prompt has ${promptIds.length} tokens and the model's context holds ${contextLength}; shorten it.`, promptParam, 'context_length_exceeded');
    }
    // Positions one sequence's KV cache may take (--max-kv-blocks), past the prompt.
    const poolRoom = ctx.limits.maxKvBlocks * KV_BLOCK_SIZE - promptIds.length;
    if (poolRoom < 1) {
      throw invalidRequest(`The prompt has ${promptIds.length} tokens and the KV pool holds ${ctx.limits.maxKvBlocks * KV_BLOCK_SIZE} positions; shorten it.`, promptParam, 'context_length_exceeded');
    }
    const maxTokens = params.maxTokens ?? Math.min(cap, room, poolRoom);
    if (maxTokens > cap) throw invalidRequest(`"max_tokens" is ${maxTokens}; this server allows at most ${cap}.`, 'max_tokens');
    if (maxTokens > room) {
      throw invalidRequest(
        `The prompt (${promptIds.length} tokens) plus max_tokens (${maxTokens}) exceeds the model's context of ${contextLength} tokens; lower max_tokens.`,
        'max_tokens',
        'context_length_exceeded',
      );
    }
    if (maxTokens > poolRoom) {
      throw invalidRequest(
        `The prompt (${promptIds.length} tokens) plus max_tokens (${maxTokens}) needs more than the KV pool's ${ctx.limits.maxKvBlocks} blocks of ${KV_BLOCK_SIZE} positions; lower max_tokens.`,
        'max_tokens',
      );
    }
    if (params.sampling.minTokens > maxTokens) throw invalidRequest(`"min_tokens" (${params.sampling.minTokens}) must not exceed max_tokens (${maxTokens}).`, 'min_tokens');
    const capacity = ctx.scheduler.queueCapacity;
    if (params.bestOf > capacity) throw invalidRequest(`The request asks for ${params.bestOf} sequences and this server queues at most ${capacity}; lower n or best_of.`, params.bestOf > params.n ? 'best_of' : 'n');
    const guide = params.guided ? await ctx.grammar.compile(params.guided) : null;
    let lease: AdapterLease | null = null;
    try {
      lease = await ctx.adapters.acquire(model);
      const echo = params.echo ? await echoOf(ctx, lease.rowName, promptIds, params, promptText) : null;
      return new GenerationJob(ctx, model, arrivedAt, lease, promptIds, maxTokens, params, echo, guide);
    } catch (error) {
      lease?.release();
      guide?.release();
      throw error;
    }
  }

  get promptTokens(): number {
    return this.promptIds.length;
  }

  /**
   * Queues the generation; throws a 429 ApiError at once when the queue cannot take all its sequences. `onDelta`
   * receives text as it becomes final (never a part of a stop string), per choice; the result settles when every
   * sequence has ended and rejects with an ApiError when one fails.
   */
  start(signal: AbortSignal, onDelta: (delta: ChoiceDelta) => void): StartedGeneration {
    const { ctx, params } = this;
    const streamed = params.bestOf === params.n;
    const entries = params.logprobs === null ? null : new LogprobEntries(ctx.tokenizer);
    const detokenize = detokenizer(ctx, params);
    const outputs = Array.from({ length: params.bestOf }, (_, i) => new ChoiceOutput(i, this.promptIds, detokenize, params.stop, params.includeStopStrInOutput, entries, this.echo));
    const send = (delta: ChoiceDelta | null) => {
      if (delta && streamed) onDelta(delta);
    };
    // Ranking best_of sequences needs every token's log-probability, asked for or not.
    const logprobs = params.logprobs ?? (params.bestOf > params.n ? 0 : null);
    const seed = params.sampling.seed ?? randomInt(0, 2 ** 32);
    const stopTokenIds = new Set([...(params.ignoreEos ? [] : ctx.stopTokenIds), ...params.stopTokenIds]);
    const metrics = ctx.metrics.track(this.model, this.arrivedAt);
    const requests = outputs.map((output, i): SequenceRequest => ({
      promptIds: this.promptIds,
      adapterName: this.lease.rowName,
      prefixNamespace: this.lease.prefixNamespace,
      maxTokens: this.maxTokens,
      sampling: { ...params.sampling, seed: ((seed >>> 0) + i) >>> 0 },
      stopTokenIds,
      emitStopToken: params.includeStopStrInOutput,
      logprobs,
      timeoutMs: ctx.limits.requestTimeoutMs,
      signal,
      onToken: (token: number, logprob: TokenLogprob | null) => {
        send(output.push(token, logprob));
        return output.stopped;
      },
      observer: metrics.sequence(this.promptIds.length),
      ...(this.guide ? { guide: this.guide } : {}),
    }));
    for (const o of outputs) send(o.opening());
    let done: Promise<SequenceOutcome>[];
    try {
      done = ctx.scheduler.submitAll(requests);
    } catch (error) {
      this.release();
      throw error;
    }
    const result = Promise.all(done).then((outcomes): GenerationResult | null => {
      this.release();
      if (outcomes.some((o) => o.status === 'cancelled')) {
        metrics.end('abort');
        return null;
      }
      const failed = outcomes.find((o): o is { status: 'failed'; error: ApiError } => o.status === 'failed');
      if (failed) {
        metrics.end(failed.error.code === 'request_timeout' ? 'timeout' : 'error');
        throw failed.error;
      }
      const finished = outcomes as Extract<SequenceOutcome, { status: 'finished' }>[];
      const choices = outputs.map((output, i): ChoiceResult & { score: number } => {
        send(output.finish());
        const o = finished[i]!;
        // A stop string can also complete in the text held back until the end.
        const finishReason = output.stopped ? 'stop' : o.finishReason;
        return { index: i, text: output.text, finishReason, logprobs: entries ? output.entries : null, score: o.meanLogprob ?? -Infinity };
      });
      const returned = streamed ? choices : [...choices].sort((a, b) => b.score - a.score).slice(0, params.n);
      metrics.end(returned.some((c) => c.finishReason === 'length') ? 'length' : 'stop');
      const completionTokens = finished.reduce((total, o) => total + o.completionTokens, 0);
      return {
        choices: returned.map((c, index) => ({ index, text: c.text, finishReason: c.finishReason, logprobs: c.logprobs })),
        usage: {
          prompt_tokens: this.promptIds.length,
          completion_tokens: completionTokens,
          total_tokens: this.promptIds.length + completionTokens,
          // The prompt counts once however many sequences ran it: the first sequence, prefilled first, says.
          ...(ctx.prefixCaching ? { prompt_tokens_details: { cached_tokens: finished[0]!.cachedTokens } } : {}),
        },
      };
    });
    return { result };
  }

  /** Gives back what the job holds once its sequences have ended or were never queued. */
  private release(): void {
    this.lease.release();
    this.guide?.release();
  }
}

/** The echoed prompt: its text, and with logprobs the prompt tokens' own (the first null), scored through the adapter. */
async function echoOf(ctx: ServeContext, adapterName: string, promptIds: readonly number[], params: GenerationParams, promptText: string | undefined): Promise<Echo> {
  const text = promptText ?? detokenizer(ctx, params)(promptIds);
  if (params.logprobs === null) return { text, entries: [] };
  const scored = await ctx.scheduler.scorePrompt(promptIds, adapterName, params.logprobs);
  const entries = new LogprobEntries(ctx.tokenizer);
  const offsets = promptOffsets(ctx, promptIds, params, text.length);
  const list = promptIds.map((token, i) => entries.entry(promptIds.slice(0, i), i === 0 ? null : scored[i - 1]!, token, offsets[i]!));
  return { text, entries: list };
}

/** Where each prompt token's text starts in the incrementally decoded prompt, at most `length` (the echoed text's). */
function promptOffsets(ctx: ServeContext, promptIds: readonly number[], params: GenerationParams, length: number): number[] {
  const decoded = new OutputText(detokenizer(ctx, params), []);
  return promptIds.map((token) => {
    const offset = Math.min(length, decoded.decodedLength);
    decoded.push(token);
    return offset;
  });
}

/** The request's text of some ids: special tokens left out unless skip_special_tokens is false. */
function detokenizer(ctx: ServeContext, params: GenerationParams): Detokenize {
  return (ids) => ctx.tokenizer.decode(ids, { skipSpecialTokens: params.skipSpecialTokens });
}
