import type { KvCache } from '../models/kv-cache.js';
import { installGenerate, type CausalLM } from '../models/causal-lm.js';
import { argmax } from '../ops/index.js';
import { noGradAsync } from '../tensor/grad-mode.js';
import { Rng } from '../tensor/random.js';
import { scopeAsync } from '../tensor/scope.js';
import { applyRepetitionPenalty, pickToken, picksGreedily, type SamplingOptions } from './sampling.js';

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
export async function generateDetailed(model: CausalLM, promptIds: number[][], options: GenerateOptions = {}): Promise<GenerationResult> {
  const maxNew = options.maxNewTokens ?? 20;
  const eos = new Set(options.eosTokenId === null ? [] : options.eosTokenId === undefined ? model.config.eosTokenIds : typeof options.eosTokenId === 'number' ? [options.eosTokenId] : options.eosTokenId);
  const rng = new Rng(options.seed ?? 0);
  const rows = promptIds.map((p) => [...p]);
  if (rows.some((r) => r.length === 0)) throw new Error('Every prompt needs at least one token.');
  if (options.adapterNames && options.adapterNames.length !== rows.length) throw new Error(`${options.adapterNames.length} adapter names for ${rows.length} prompts.`);
  const caches: KvCache[] = rows.map((r) => model.newCache(r.length + maxNew));
  const finish: (FinishReason | null)[] = rows.map(() => null);
  // Greedy steps take each row's argmax on the device and read back only the ids, never the logits.
  const greedy = isGreedy(options);
  try {
    return await noGradAsync(async () => {
      let next = new Array<number>(rows.length).fill(-1);
      for (let b = 0; b < rows.length; b++) {
        const adapters = options.adapterNames ? [options.adapterNames[b]!] : undefined;
        next[b] = (await nextTokens(model, [rows[b]!], [caches[b]!], adapters, [rows[b]!], options, rng, greedy))[0]!;
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
        const ids = await nextTokens(
          model,
          active.map((b) => [next[b]!]),
          active.map((b) => caches[b]!),
          options.adapterNames ? active.map((b) => options.adapterNames![b]!) : undefined,
          active.map((b) => rows[b]!),
          options,
          rng,
          greedy,
        );
        next = next.slice();
        active.forEach((b, i) => {
          next[b] = ids[i]!;
        });
      }
      return { sequences: rows, finishReasons: finish.map((f) => f ?? 'length') };
    });
  } finally {
    for (const c of caches) c.dispose();
  }
}

/**
 * One forward over the rows and each row's next token: the device argmax when greedy (only the ids come back), else
 * choose() over the row's logits, rows in order (so a seeded generator is drawn from in the same order).
 */
async function nextTokens(
  model: CausalLM, inputIds: number[][], caches: KvCache[], adapterNames: readonly string[] | undefined,
  sequences: readonly number[][], options: GenerateOptions, rng: Rng, greedy: boolean,
): Promise<number[]> {
  return scopeAsync(async () => {
    const out = model.run({ inputIds, caches, lastTokenOnly: true, adapterNames });
    if (greedy) return Array.from(await argmax(out.logits).intData());
    const logits = await out.logits.data();
    const vocab = model.config.vocabSize;
    return sequences.map((sequence, i) => choose(logits.subarray(i * vocab, (i + 1) * vocab), sequence, options, rng));
  });
}

/** True when choose() reduces to argmax of the raw logits: pickToken's greedy branch and no repetition penalty applied. */
function isGreedy(options: GenerateOptions): boolean {
  return picksGreedily(options) && (!options.repetitionPenalty || options.repetitionPenalty === 1);
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
export async function generate(model: CausalLM, promptIds: number[][], options: GenerateOptions = {}): Promise<number[][]> {
  return (await generateDetailed(model, promptIds, options)).sequences;
}

installGenerate((model, promptIds, options) => generate(model, promptIds, options as GenerateOptions));
