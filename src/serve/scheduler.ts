import { setImmediate as yieldToIo } from 'node:timers/promises';
import { getBackend } from '../backend/registry.js';
import type { CausalLM } from '../models/causal-lm.js';
import { KvPoolFullError } from '../models/kv-blocks.js';
import { argmax } from '../ops/index.js';
import { noGradAsync } from '../tensor/grad-mode.js';
import { scopeAsync } from '../tensor/scope.js';
import { internalError, queueFull, requestTimedOut, serverShuttingDown } from './api-error.js';
import type { TokenMask } from './grammar/token-mask.js';
import { Sequence, type SequenceOutcome, type SequenceRequest } from './sequence.js';
import { tokenLogprobs, type TokenLogprob } from './token-logprobs.js';
import type { Tensor } from '../tensor/tensor.js';

/** The part of a causal LM the scheduler drives: a synchronous forward with one KV cache and one adapter per row. */
export type DecoderModel = Pick<CausalLM, 'run' | 'newCache' | 'config' | 'device'>;

export interface SchedulerOptions {
  /** Sequences decoded together in one step at most. */
  readonly maxBatch: number;
  /** Sequences waiting for a batch slot at most; more are refused with 429. */
  readonly maxQueue: number;
  /** Told about processed tokens (metrics). */
  readonly onTokens?: (kind: 'prompt' | 'generated', count: number) => void;
  /** Told about a forward pass that threw (logging); the affected sequences fail with a 500. */
  readonly onError?: (error: unknown) => void;
  /**
   * Automatic prefix caching: a prompt shares the full KV blocks an earlier prompt of the same namespace (adapter)
   * published for the same leading tokens, and prefills only the rest. Prefills then run under the batch-invariant
   * matmuls and through paged attention, so a prompt gets the same bits whether its prefix was cached or not.
   * Default false.
   */
  readonly prefixCaching?: boolean;
}

/**
 * What one forward pass brings back to the host: the argmax of every row, taken on the device, when some row
 * chooses greedily, and the full logits [rows, vocab] only when some row does not (sampling, penalties, bias or
 * masks need them). Greedy-only steps so move rows int32s instead of rows x vocab floats.
 */
interface StepOutput {
  readonly ids: Int32Array | null;
  readonly logits: Float32Array | null;
}

/** A row's next token with its log-probabilities (when its request asked), or null when choosing it failed. */
type RowPick = { readonly token: number; readonly logprob: TokenLogprob | null } | null;

interface ExclusiveTask {
  run(): Promise<void>;
}

/**
 * Continuous batching in one loop. At every step boundary the loop runs exclusive tasks (adapter loads and unloads,
 * which must not interleave with a forward pass or its memory scope), drops cancelled and expired sequences,
 * prefills waiting sequences one at a time until the batch is full, then decodes every running sequence in one
 * forward pass: one row per sequence, its own KV cache and adapter name, so the base projections run once for the
 * whole batch. Each row's result depends on that row alone: attention, norms and the adapters' products work row
 * by row, and decode steps run under the backend's batch-invariant matmuls (Backend.batchInvariant, where the
 * backend has them: the CPU and CUDA backends both do), whose m is the number of running sequences. A prefill runs
 * alone, so its products need no such care and take the fastest kernels; with prefix caching it computes only the
 * tokens after its shared blocks, so it too runs batch-invariant (its m is that count). A sequence whose cache does
 * not fit a pool at its block limit waits at the head of the queue until running sequences give blocks back.
 */
export class Scheduler {
  private readonly waiting: Sequence[] = [];
  private running: Sequence[] = [];
  private readonly tasks: ExclusiveTask[] = [];
  private wake: (() => void) | null = null;
  private closed = false;
  private readonly stopped: Promise<void>;

  constructor(
    private readonly model: DecoderModel,
    private readonly options: SchedulerOptions,
  ) {
    this.stopped = this.loop();
  }

  get queueDepth(): number {
    return this.waiting.length;
  }

  /** Sequences the queue holds at most. */
  get queueCapacity(): number {
    return this.options.maxQueue;
  }

  get runningCount(): number {
    return this.running.length;
  }

  /** Queues a sequence; throws a 429 ApiError when the queue is full. */
  submit(request: SequenceRequest): Promise<SequenceOutcome> {
    return this.submitAll([request])[0]!;
  }

  /** Queues the sequences of one request (its choices) all or none: a 429 ApiError when they do not all fit. */
  submitAll(requests: readonly SequenceRequest[]): Promise<SequenceOutcome>[] {
    if (this.closed) throw serverShuttingDown();
    if (this.waiting.length + requests.length > this.options.maxQueue) throw queueFull(this.options.maxQueue);
    const now = performance.now();
    const sequences = requests.map((r) => new Sequence(r, now));
    this.waiting.push(...sequences);
    this.notify();
    return sequences.map((seq) => seq.done);
  }

  /** Runs `fn` between two steps, when no forward pass or memory scope is open. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(serverShuttingDown());
    return new Promise<T>((resolve, reject) => {
      this.tasks.push({ run: () => fn().then(resolve, reject) });
      this.notify();
    });
  }

  /**
   * The log-probability of every prompt token after the first, given the tokens before it, with `top` alternatives
   * each: one forward pass over the whole prompt, alone and between two steps, through the adapter `adapterName`.
   */
  scorePrompt(promptIds: readonly number[], adapterName: string, top: number): Promise<TokenLogprob[]> {
    return this.exclusive(() =>
      noGradAsync(() =>
        scopeAsync(async () => {
          // logits [1, T, vocab]: row t predicts token t + 1.
          const { logits } = this.model.run({ inputIds: [[...promptIds]], adapterNames: [adapterName] });
          return tokenLogprobs(logits, promptIds.slice(1).map((token, row) => ({ row, token, top })));
        }),
      ),
    );
  }

  /** Fails every queued and running sequence with 503 and stops the loop. */
  async close(): Promise<void> {
    this.closed = true;
    this.notify();
    await this.stopped;
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private async loop(): Promise<void> {
    while (!this.closed) {
      while (this.tasks.length > 0) await this.tasks.shift()!.run();
      this.reap();
      while (this.running.length < this.options.maxBatch && this.waiting.length > 0 && this.tasks.length === 0) {
        const seq = this.waiting.shift()!;
        if (!(await this.prefill(seq))) {
          this.waiting.unshift(seq);
          break;
        }
        await yieldToIo();
        this.reap();
      }
      if (this.running.length > 0) {
        await this.decode();
        await yieldToIo();
      } else if (this.waiting.length === 0 && this.tasks.length === 0 && !this.closed) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
      }
    }
    for (const seq of [...this.waiting, ...this.running]) seq.end({ status: 'failed', error: serverShuttingDown() });
    this.waiting.length = 0;
    this.running = [];
    for (const task of this.tasks.splice(0)) await task.run();
  }

  /** Ends cancelled and expired sequences, queued or running. */
  private reap(): void {
    const now = performance.now();
    for (const list of [this.waiting, this.running]) {
      for (let i = list.length - 1; i >= 0; i--) {
        const seq = list[i]!;
        if (seq.request.signal?.aborted) seq.end({ status: 'cancelled' });
        else if (now > seq.deadline) seq.end({ status: 'failed', error: requestTimedOut(seq.request.timeoutMs) });
        if (seq.outcome) list.splice(i, 1);
      }
    }
  }

  /**
   * Runs the prompt alone (rows of one batch must have equal length), after its shared prefix blocks where prefix
   * caching found some, and picks the first token. False when the KV pool is at its limit and running sequences
   * will free blocks: the sequence stays queued.
   */
  private async prefill(seq: Sequence): Promise<boolean> {
    const r = seq.request;
    const caching = this.options.prefixCaching === true;
    try {
      seq.cache = this.model.newCache(r.promptIds.length + r.maxTokens, caching ? { namespace: r.prefixNamespace ?? r.adapterName, tokens: r.promptIds } : undefined);
    } catch (error) {
      if (error instanceof KvPoolFullError && this.running.length > 0) return false;
      r.observer?.scheduled(0);
      this.fail([seq], error);
      return true;
    }
    r.observer?.scheduled(seq.cache.cachedTokens);
    try {
      seq.cachedTokens = seq.cache.cachedTokens;
      await seq.startGrammar();
      const [pick] = await this.step([seq.tokens.slice(seq.cachedTokens)], [seq], caching, caching);
      // Published before the pick is recorded, which may end the sequence and give its blocks back.
      if (caching) seq.cache?.publish();
      this.options.onTokens?.('prompt', r.promptIds.length);
      this.options.onTokens?.('generated', 1);
      if (this.record(seq, pick!)) this.running.push(seq);
    } catch (error) {
      this.fail([seq], error);
    }
    return true;
  }

  /**
   * One token for every running sequence, in one forward pass. Rows are grouped by adapter (a stable sort), so
   * each adapter's rows form one contiguous run for the low-rank products.
   */
  private async decode(): Promise<void> {
    const batch = this.running.sort((a, b) => compareNames(a.request.adapterName, b.request.adapterName));
    try {
      const picks = await this.step(
        batch.map((s) => [s.next]),
        batch,
        true,
      );
      this.options.onTokens?.('generated', batch.length);
      this.running = batch.filter((seq, row) => this.record(seq, picks[row]!));
    } catch (error) {
      this.fail(batch, error);
      this.running = [];
    }
  }

  /**
   * One forward pass and every row's next token: the device argmax for greedy rows, the chooser over the row's
   * logits (within its grammar's mask, for a constrained row) for the others, then the log-probabilities of the
   * rows that asked, on the device, before the step's memory scope ends. The masks are computed on the host while
   * the device runs the forward pass.
   */
  private async step(inputIds: number[][], batch: readonly Sequence[], batchInvariant: boolean, pagedPrefill = false): Promise<RowPick[]> {
    const backend = getBackend(this.model.device);
    const greedy = batch.filter((s) => s.chooser.choosesGreedy).length;
    return noGradAsync(() =>
      scopeAsync(async () => {
        const run = () =>
          this.model.run({
            inputIds,
            caches: batch.map((s) => s.cache!),
            lastTokenOnly: true,
            pagedPrefill,
            // Always per row: "__base__" rows must not fall back to whichever adapter is active.
            adapterNames: batch.map((s) => s.request.adapterName),
          });
        const out = batchInvariant && backend.batchInvariant ? backend.batchInvariant(run) : run();
        const masks = await Promise.all(batch.map((seq) => this.mask(seq)));
        // logits are [rows, 1, vocab]: the argmax is [rows, 1], one id per row.
        const step: StepOutput = {
          ids: greedy > 0 ? await argmax(out.logits).intData() : null,
          logits: greedy < batch.length ? await out.logits.data() : null,
        };
        const tokens = batch.map((seq, row) => this.choose(seq, step, row, masks[row]!));
        return this.withLogprobs(out.logits, batch, tokens);
      }),
    );
  }

  /** A constrained row's grammar mask for this step; a failure ends that sequence alone. */
  private async mask(seq: Sequence): Promise<TokenMask | null> {
    if (!seq.grammar) return null;
    try {
      return await seq.grammar.nextMask();
    } catch (error) {
      this.fail([seq], error);
      return null;
    }
  }

  /**
   * Chooses the token of row `row` (its device argmax when it chooses greedily, else from its logits), turning an
   * exception into that sequence's failure alone (null). Null too for a sequence that has ended: its mask failed,
   * or its grammar left no token.
   */
  private choose(seq: Sequence, step: StepOutput, row: number, mask: TokenMask | null): number | null {
    if (seq.outcome) return null;
    try {
      if (seq.chooser.choosesGreedy) return seq.accept(step.ids![row]!);
      const vocab = this.model.config.vocabSize;
      return seq.choose(step.logits!.subarray(row * vocab, (row + 1) * vocab), mask);
    } catch (error) {
      this.fail([seq], error);
      return null;
    }
  }

  private async withLogprobs(logits: Tensor, batch: readonly Sequence[], tokens: readonly (number | null)[]): Promise<RowPick[]> {
    const rows = batch.flatMap((seq, row) => {
      const token = tokens[row];
      const top = seq.request.logprobs;
      return token === null || token === undefined || top === null ? [] : [{ row, token, top }];
    });
    const found = await tokenLogprobs(logits, rows);
    const byRow = new Map(rows.map((r, i) => [r.row, found[i]!]));
    return tokens.map((token, row) => (token === null ? null : { token, logprob: byRow.get(row) ?? null }));
  }

  /** Appends a row's pick to its sequence; a failed pick, or an exception from its token callback, ends it alone. */
  private record(seq: Sequence, pick: RowPick): boolean {
    if (!pick) return false;
    try {
      return seq.record(pick.token, pick.logprob);
    } catch (error) {
      this.fail([seq], error);
      return false;
    }
  }

  private fail(batch: readonly Sequence[], error: unknown): void {
    this.options.onError?.(error);
    for (const seq of batch) seq.end({ status: 'failed', error: internalError() });
  }
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
