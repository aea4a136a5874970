import { invalidRequest } from './api-error.js';
import { GENERATION_FIELD_RULES, MAX_LOGPROBS, optionalChoices, parseGenerationParams, type GenerationParams } from './generation-params.js';
import { GUIDED_FIELD_RULES, parseGuidedDecoding } from './guided-fields.js';
import { optionalBoolean, optionalInteger, requireObject, requireString } from './json-fields.js';
import { checkFields, offOnly, READ, type FieldRules } from './request-fields.js';

/** A POST /v1/completions body after validation. */
export interface CompletionRequest {
  readonly model: string;
  /** Text to encode (with the tokenizer's special tokens) or token ids used as they are. */
  readonly prompt: { readonly text: string } | { readonly ids: readonly number[] };
  readonly params: GenerationParams;
}

/** OpenAI's default max_tokens for the completions endpoint. */
const DEFAULT_MAX_TOKENS = 16;

/** Every field of a completions body and what it is to this server. */
export const COMPLETION_FIELD_RULES: FieldRules = {
  ...GENERATION_FIELD_RULES,
  ...GUIDED_FIELD_RULES,
  prompt: READ,
  max_tokens: READ,
  best_of: READ,
  echo: READ,
  logprobs: READ,
  suffix: offOnly((v) => v === '', 'is not supported by this server (insertion); remove it'),
};

export function parseCompletionRequest(raw: unknown, vocabSize: number): CompletionRequest {
  const body = requireObject(raw);
  checkFields(body, COMPLETION_FIELD_RULES, 'POST /v1/completions');
  const model = requireString(body, 'model');
  const prompt = parsePrompt(body['prompt'], vocabSize);
  const params = parseGenerationParams(body, ['max_tokens'], DEFAULT_MAX_TOKENS, vocabSize, {
    bestOf: optionalChoices(body, 'best_of'),
    logprobs: optionalInteger(body, 'logprobs', 0, MAX_LOGPROBS) ?? null,
    echo: optionalBoolean(body, 'echo') ?? false,
    guided: parseGuidedDecoding(body),
  });
  return { model, prompt, params };
}

/** A string, token ids, or a one-element array of either (the OpenAI client's batch forms with a batch of one). */
function parsePrompt(v: unknown, vocabSize: number): CompletionRequest['prompt'] {
  const single = singlePrompt(v, vocabSize);
  if (single) return single;
  if (Array.isArray(v) && v.length > 1) throw invalidRequest('"prompt" holds several prompts; this server takes one prompt per request.', 'prompt', 'unsupported_parameter');
  const inner = Array.isArray(v) && v.length === 1 ? singlePrompt(v[0], vocabSize) : null;
  if (inner) return inner;
  throw invalidRequest('"prompt" must be a string, an array of token ids, or an array holding one of those.', 'prompt');
}

/** A string or a non-empty array of token ids, else null. */
function singlePrompt(v: unknown, vocabSize: number): CompletionRequest['prompt'] | null {
  if (typeof v === 'string') return { text: v };
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number')) return { ids: checkIds(v as number[], vocabSize) };
  return null;
}

function checkIds(ids: readonly number[], vocabSize: number): number[] {
  ids.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw invalidRequest(`"prompt" token ${i} is ${id}; token ids are integers from 0 to ${vocabSize - 1}.`, 'prompt');
    }
  });
  return [...ids];
}
