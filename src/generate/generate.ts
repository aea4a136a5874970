import type { KvCache } from '../models/kv-cache.js';
import { installGenerate, type LlamaForCausalLM } from '../models/llama.js';
import { argmax } from '../ops/index.js';
import { noGradAsync } from '../tensor/grad-mode.js';
import { Rng } from '../tensor/random.js';
import { scopeAsync } from '../tensor/scope.js';
import { applyRepetitionPenalty, pickToken, type SamplingOptions } from './sampling.js';

export interface GenerateOptions extends SamplingOptions {
  /** New tokens per row at most (transformers' max_new_tokens). Default 20. */
  maxNewTokens?: number;
  /** Stop a row after it emits one of these; default: the model config's eos_token_id(s). null disables. */
  eosTokenId?: number | readonly number[] | null;
  /** Stop a row when its generated tokens end with one of these id sequences (the sequence is kept). */
  stopSequences?: readonly (readonly number[])[];
  seed?: number;
  /** Adapter per row for mixed-adapter batches ("__base__" for none). */
  adapterNames?: readonly string[];
  /** Called for every generated token as soon as it is chosen (streaming). */
  onToken?: (row: number, token: number) => void;
  signal?: AbortSignal;
}

/** Why a row stopped, as OpenAI reports it. */
export type FinishReason = 'stop' | 'length';

export interface GenerationResult {
  /** Prompt followed by the generated tokens, per row (rows may differ in length once one stops early). */
  sequences: number[][];
  finishReasons: FinishReason[];
}

/**
 * Autoregressive decoding with one KV cache per row: each prompt is prefilled on its own (rows may differ in
 * length), then every step decodes all unfinished rows in one batch.
 */
export async function generateDetailed(model: LlamaForCausalLM, promptIds: number[][], options: GenerateOptions = {}): Promise<GenerationResult> {
  const maxNew = options.maxNewTokens ?? 20;
  const eos = new Set(options.eosTokenId === null ? [] : options.eosTokenId === undefined ? model.config.eosTokenIds : typeof options.eosTokenId === 'number' ? [options.eosTokenId] : options.eosTokenId);
  const rng = new Rng(options.seed ?? 0);
  const rows = promptIds.map((p) => [...p]);
  if (rows.some((r) => r.length === 0)) throw new Error('Every prompt needs at least one token.');
  if (options.adapterNames && options.adapterNames.length !== rows.length) throw new Error(`${options.adapterNames.length} adapter names for ${rows.length} prompts.`);
  const caches: KvCache[] = rows.map((r) => model.newCache(r.length + maxNew));
  const finish: (FinishReason | null)[] = rows.map(() => null);
  const vocab = model.config.vocabSize;
  // Greedy steps take each row's argmax on the device and read back only the ids, never the logits.
  const greedy = isGreedy(options);
  try {
    return await noGradAsync(async () => {
      let next = new Array<number>(rows.length).fill(-1);
      for (let b = 0; b < rows.length; b++) {
        const adapters = options.adapterNames ? [options.adapterNames[b]!] : undefined;
        if (greedy) next[b] = (await lastIds(model, [rows[b]!], [caches[b]!], adapters))[0]!;
        else next[b] = choose((await lastLogits(model, [rows[b]!], [caches[b]!], adapters)).subarray(0, vocab), rows[b]!, options, rng);
      }
      for (let step = 0; step < maxNew; step++) {
        const active: number[] = [];
        for (let b = 0; b < rows.length; b++) {
          if (finish[b]) continue;
          rows[b]!.push(next[b]!);
          options.onToken?.(b, next[b]!);
          const generated = rows[b]!.length - promptIds[b]!.length;
          if (eos.has(next[b]!) || endsWithStop(rows[b]!, promptIds[b]!.length, options.stopSequences)) finish[b] = 'stop';
          else if (generated >= maxNew) finish[b] = 'length';
          else active.push(b);
        }
        if (active.length === 0 || options.signal?.aborted) break;
        const inputIds = active.map((b) => [next[b]!]);
        const activeCaches = active.map((b) => caches[b]!);
        const adapters = options.adapterNames ? active.map((b) => options.adapterNames![b]!) : undefined;
        next = next.slice();
        if (greedy) {
          const ids = await lastIds(model, inputIds, activeCaches, adapters);
          active.forEach((b, i) => {
            next[b] = ids[i]!;
          });
        } else {
          const logits = await lastLogits(model, inputIds, activeCaches, adapters);
          active.forEach((b, i) => {
            next[b] = choose(logits.subarray(i * vocab, (i + 1) * vocab), rows[b]!, options, rng);
          });
        }
      }
      return { sequences: rows, finishReasons: finish.map((f) => f ?? 'length') };
    });
  } finally {
    for (const c of caches) c.dispose();
  }
}

async function lastLogits(model: LlamaForCausalLM, inputIds: number[][], caches: KvCache[], adapterNames?: readonly string[]): Promise<Float32Array> {
  return scopeAsync(async () => {
    const out = model.run({ inputIds, caches, lastTokenOnly: true, adapterNames });
    return out.logits.data();
  });
}

/** The rows' argmax, taken on the device: what choose() returns from the full logits when options are greedy. */
async function lastIds(model: LlamaForCausalLM, inputIds: number[][], caches: KvCache[], adapterNames?: readonly string[]): Promise<Int32Array> {
  return scopeAsync(async () => {
    const out = model.run({ inputIds, caches, lastTokenOnly: true, adapterNames });
    return argmax(out.logits).intData();
  });
}

/** True when choose() reduces to argmax of the raw logits: pickToken's greedy branch and no repetition penalty applied. */
function isGreedy(options: GenerateOptions): boolean {
  const sampled = options.doSample && (options.temperature ?? 1) > 0;
  const penalised = Boolean(options.repetitionPenalty) && options.repetitionPenalty !== 1;
  return !sampled && !penalised;
}

function choose(logits: Float32Array, sequence: readonly number[], options: GenerateOptions, rng: Rng): number {
  const scores = options.repetitionPenalty && options.repetitionPenalty !== 1 ? logits.slice() : logits;
  if (options.repetitionPenalty) applyRepetitionPenalty(scores, sequence, options.repetitionPenalty);
  return pickToken(scores, options, rng);
}

function endsWithStop(row: readonly number[], promptLength: number, stops: GenerateOptions['stopSequences']): boolean {
  if (!stops) return false;
  const generated = row.length - promptLength;
  return stops.some((s) => s.length > 0 && s.length <= generated && s.every((id, i) => row[row.length - s.length + i] === id));
}

/** transformers-style generate(): prompt + new tokens per row. */
export async function generate(model: LlamaForCausalLM, promptIds: number[][], options: GenerateOptions = {}): Promise<number[][]> {
  return (await generateDetailed(model, promptIds, options)).sequences;
}

installGenerate((model, promptIds, options) => generate(model, promptIds, options as GenerateOptions));
