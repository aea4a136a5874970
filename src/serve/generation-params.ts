import { invalidRequest } from './api-error.js';
import type { GuidedDecoding } from './grammar/guided-decoding.js';
import { isObject, optionalBoolean, optionalInteger, optionalNumber, requireObject, type JsonObject } from './json-fields.js';
import { NO_OP, READ, offOnly, type FieldRules } from './request-fields.js';

/** How the next token is picked; the defaults are OpenAI's. */
export interface SamplingParams {
  /** 0 picks the most likely token (greedy). */
  readonly temperature: number;
  readonly topP: number;
  /** 0 disables top-k (an extension field; -1 is accepted as "off" too, as vLLM does). */
  readonly topK: number;
  /** vLLM's min_p: tokens less likely than minP times the most likely one are dropped; 0 is off. */
  readonly minP: number;
  /** Seeds this sequence's own generator, so a seeded request samples the same tokens in any batch. */
  readonly seed: number | undefined;
  /** transformers' repetition penalty over prompt and output (an extension field); 1 is off. */
  readonly repetitionPenalty: number;
  /** OpenAI's penalties over the generated tokens only; 0 is off. */
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
  /** OpenAI's logit_bias: token id -> added to its logit before choosing; -100 bans the token outright. */
  readonly logitBias: ReadonlyMap<number, number>;
  /** vLLM's min_tokens: the sequence's stop token ids are masked until this many tokens are generated. */
  readonly minTokens: number;
}

/** Greedy decoding with every other control off: what scheduler callers without a request body start from. */
export const GREEDY_SAMPLING: SamplingParams = {
  temperature: 0,
  topP: 1,
  topK: 0,
  minP: 0,
  seed: undefined,
  repetitionPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  logitBias: new Map(),
  minTokens: 0,
};

/** What both endpoints accept beside their prompt. */
export interface GenerationParams {
  /** undefined: as many as the context and the server's cap allow. */
  readonly maxTokens: number | undefined;
  readonly stop: readonly string[];
  readonly sampling: SamplingParams;
  readonly stream: boolean;
  /** stream_options.include_usage: a last chunk with usage (and usage: null in the others). */
  readonly includeUsage: boolean;
  /** Choices returned. */
  readonly n: number;
  /** Sequences generated, n of them returned (completions' best_of; n elsewhere). */
  readonly bestOf: number;
  /** Log-probabilities per generated token with this many alternatives; null: none. */
  readonly logprobs: number | null;
  /** Completions' echo: the prompt is prepended to each choice (and its tokens get log-probabilities). */
  readonly echo: boolean;
  /** vLLM's stop_token_ids: ids that end a sequence beside the model's EOS ids. */
  readonly stopTokenIds: readonly number[];
  /** vLLM's ignore_eos (LoRAX's ignore_eos_token): the model's EOS ids do not end the sequence. */
  readonly ignoreEos: boolean;
  /** vLLM's skip_special_tokens: special tokens are left out of the output text (default true). */
  readonly skipSpecialTokens: boolean;
  /** vLLM's include_stop_str_in_output: the stop string or stop token's text that ended a choice is kept. */
  readonly includeStopStrInOutput: boolean;
  /** Structured output: the grammar every choice keeps to; null: none. */
  readonly guided: GuidedDecoding | null;
}

/** The GenerationParams fields an endpoint reads itself; bestOf undefined means n (one sequence per choice). */
export type EndpointParams = Pick<GenerationParams, 'logprobs' | 'echo' | 'guided'> & { readonly bestOf: number | undefined };

const MAX_STOP_STRINGS = 16;
/** Most choices (n, best_of) and log-probability alternatives one request may ask for (vLLM's max_logprobs). */
export const MAX_CHOICES = 20;
export const MAX_LOGPROBS = 20;

/** The fields parseGenerationParams reads, and the documented no-ops both endpoints accept. */
export const GENERATION_FIELD_RULES: FieldRules = {
  model: READ,
  stop: READ,
  stream: READ,
  stream_options: READ,
  temperature: READ,
  top_p: READ,
  top_k: READ,
  min_p: READ,
  seed: READ,
  n: READ,
  repetition_penalty: READ,
  presence_penalty: READ,
  frequency_penalty: READ,
  logit_bias: READ,
  stop_token_ids: READ,
  ignore_eos: READ,
  ignore_eos_token: READ,
  min_tokens: READ,
  skip_special_tokens: READ,
  include_stop_str_in_output: READ,
  // OpenAI: identifiers for abuse monitoring and prompt caching; they change no output.
  user: NO_OP,
  safety_identifier: NO_OP,
  prompt_cache_key: NO_OP,
  // Nothing is stored, so store may only be false; metadata only tags stored completions.
  store: offOnly((v) => v === false, 'is not supported by this server (it stores no completions); send false or leave it out'),
  metadata: NO_OP,
  service_tier: offOnly((v) => v === 'auto' || v === 'default', 'is not supported by this server beyond "auto" and "default" (it has one processing tier)'),
};

/** Reads the sampling, stopping and streaming fields of a completions or chat request body. */
export function parseGenerationParams(
  body: JsonObject,
  maxTokensKeys: readonly string[],
  defaultMaxTokens: number | undefined,
  vocabSize: number,
  endpoint: EndpointParams,
): GenerationParams {
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
  const n = optionalChoices(body, 'n') ?? 1;
  const bestOf = endpoint.bestOf ?? n;
  if (bestOf < n) throw invalidRequest(`"best_of" (${bestOf}) must be at least "n" (${n}).`, 'best_of');
  if (stream && bestOf > n) throw invalidRequest('"best_of" greater than "n" cannot be streamed; the best choices are known only at the end.', 'best_of');
  return {
    maxTokens,
    stop: parseStop(body['stop']),
    stream,
    includeUsage,
    n,
    bestOf,
    logprobs: endpoint.logprobs,
    echo: endpoint.echo,
    guided: endpoint.guided,
    stopTokenIds: tokenIds(body, 'stop_token_ids', vocabSize),
    ignoreEos: ignoreEos(body),
    skipSpecialTokens: optionalBoolean(body, 'skip_special_tokens') ?? true,
    includeStopStrInOutput: optionalBoolean(body, 'include_stop_str_in_output') ?? false,
    sampling: {
      temperature: optionalNumber(body, 'temperature', 0, 2) ?? 1,
      topP: positiveAtMostOne(body, 'top_p'),
      topK: topK < 0 ? 0 : topK,
      minP: optionalNumber(body, 'min_p', 0, 1) ?? 0,
      seed: optionalInteger(body, 'seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
      repetitionPenalty: positive(body, 'repetition_penalty'),
      presencePenalty: optionalNumber(body, 'presence_penalty', -2, 2) ?? 0,
      frequencyPenalty: optionalNumber(body, 'frequency_penalty', -2, 2) ?? 0,
      logitBias: logitBias(body['logit_bias'], vocabSize),
      minTokens: optionalInteger(body, 'min_tokens', 0, Number.MAX_SAFE_INTEGER) ?? 0,
    },
  };
}

/** n or best_of: 1 to MAX_CHOICES. */
export function optionalChoices(body: JsonObject, key: string): number | undefined {
  return optionalInteger(body, key, 1, MAX_CHOICES);
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

/** ignore_eos, or LoRAX's spelling ignore_eos_token; both given, they must agree. */
function ignoreEos(body: JsonObject): boolean {
  const vllm = optionalBoolean(body, 'ignore_eos');
  const lorax = optionalBoolean(body, 'ignore_eos_token');
  if (vllm !== undefined && lorax !== undefined && vllm !== lorax) {
    throw invalidRequest('"ignore_eos" and its alias "ignore_eos_token" disagree; send one of them.', 'ignore_eos_token');
  }
  return vllm ?? lorax ?? false;
}

function tokenIds(body: JsonObject, key: string, vocabSize: number): number[] {
  const v = body[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((id) => !isTokenId(id, vocabSize))) {
    throw invalidRequest(`"${key}" must be an array of token ids, integers from 0 to ${vocabSize - 1}.`, key);
  }
  return v as number[];
}

function isTokenId(id: unknown, vocabSize: number): id is number {
  return typeof id === 'number' && Number.isInteger(id) && id >= 0 && id < vocabSize;
}

/** OpenAI's map of token id (a decimal string) to a bias from -100 to 100. */
function logitBias(v: unknown, vocabSize: number): Map<number, number> {
  const bias = new Map<number, number>();
  if (v === undefined || v === null) return bias;
  if (!isObject(v)) throw invalidRequest('"logit_bias" must be an object mapping token ids to numbers from -100 to 100.', 'logit_bias');
  for (const [key, value] of Object.entries(v)) {
    const id = /^\d+$/.test(key) ? Number(key) : NaN;
    if (!isTokenId(id, vocabSize)) throw invalidRequest(`"logit_bias" key "${key}" is not a token id; ids are integers from 0 to ${vocabSize - 1}.`, 'logit_bias');
    if (typeof value !== 'number' || !(value >= -100 && value <= 100)) {
      throw invalidRequest(`"logit_bias" value for token ${key} must be a number from -100 to 100.`, 'logit_bias');
    }
    bias.set(id, value);
  }
  return bias;
}
