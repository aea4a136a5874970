import { invalidRequest } from './api-error.js';
import { optionalBoolean, optionalInteger, optionalNumber, requireObject, type JsonObject } from './json-fields.js';

/** How the next token is picked; the defaults are OpenAI's. */
export interface SamplingParams {
  /** 0 picks the most likely token (greedy). */
  readonly temperature: number;
  readonly topP: number;
  /** 0 disables top-k (an extension field; -1 is accepted as "off" too, as vLLM does). */
  readonly topK: number;
  /** Seeds this request's own generator, so a seeded request samples the same tokens in any batch. */
  readonly seed: number | undefined;
  /** transformers' repetition penalty over prompt and output (an extension field); 1 is off. */
  readonly repetitionPenalty: number;
  /** OpenAI's penalties over the generated tokens only; 0 is off. */
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
}

/** What both endpoints accept beside their prompt. */
export interface GenerationParams {
  /** undefined: as many as the context and the server's cap allow. */
  readonly maxTokens: number | undefined;
  readonly stop: readonly string[];
  readonly sampling: SamplingParams;
  readonly stream: boolean;
  /** stream_options.include_usage: a last chunk with usage (and usage: null in the others). */
  readonly includeUsage: boolean;
}

const MAX_STOP_STRINGS = 16;

/** Reads the sampling, stopping and streaming fields of a completions or chat request body. */
export function parseGenerationParams(body: JsonObject, maxTokensKeys: readonly string[], defaultMaxTokens: number | undefined): GenerationParams {
  let maxTokens = defaultMaxTokens;
  for (const key of maxTokensKeys) {
    const v = optionalInteger(body, key, 1, Number.MAX_SAFE_INTEGER);
    if (v !== undefined) maxTokens = v;
  }
  const stream = optionalBoolean(body, 'stream') ?? false;
  const streamOptions = body['stream_options'];
  let includeUsage = false;
  if (streamOptions !== undefined && streamOptions !== null) {
    if (!stream) throw invalidRequest('"stream_options" is only allowed when "stream" is true.', 'stream_options');
    includeUsage = optionalBoolean(requireObject(streamOptions, 'stream_options'), 'include_usage') ?? false;
  }
  const topK = optionalInteger(body, 'top_k', -1, Number.MAX_SAFE_INTEGER) ?? 0;
  return {
    maxTokens,
    stop: parseStop(body['stop']),
    stream,
    includeUsage,
    sampling: {
      temperature: optionalNumber(body, 'temperature', 0, 2) ?? 1,
      topP: positiveAtMostOne(body, 'top_p'),
      topK: topK < 0 ? 0 : topK,
      seed: optionalInteger(body, 'seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
      repetitionPenalty: positive(body, 'repetition_penalty'),
      presencePenalty: optionalNumber(body, 'presence_penalty', -2, 2) ?? 0,
      frequencyPenalty: optionalNumber(body, 'frequency_penalty', -2, 2) ?? 0,
    },
  };
}

function positiveAtMostOne(body: JsonObject, key: string): number {
  const v = optionalNumber(body, key, 0, 1) ?? 1;
  if (v === 0) throw invalidRequest(`"${key}" must be greater than 0.`, key);
  return v;
}

function positive(body: JsonObject, key: string): number {
  const v = optionalNumber(body, key, 0, 100) ?? 1;
  if (v === 0) throw invalidRequest(`"${key}" must be greater than 0.`, key);
  return v;
}

function parseStop(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) throw invalidRequest('"stop" must be a string or an array of strings.', 'stop');
  if (list.length > MAX_STOP_STRINGS) throw invalidRequest(`"stop" may hold at most ${MAX_STOP_STRINGS} strings.`, 'stop');
  return (list as string[]).filter((s) => s.length > 0);
}
