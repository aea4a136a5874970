import type { ChatMessage } from '../../tokenizer/index.js';
import { invalidRequest } from '../api-error.js';
import { GENERATION_FIELD_RULES, parseGenerationParams, type GenerationParams } from '../generation-params.js';
import { isObject, optionalString, requireObject, requireString, type JsonObject } from '../json-fields.js';
import { checkFields, NO_OP, offOnly, READ, type FieldRules } from '../request-fields.js';

/** A POST /v1/responses body after validation. */
export interface ResponsesRequest {
  readonly model: string;
  /** instructions as the system turn, then the input's messages. */
  readonly messages: readonly ChatMessage[];
  readonly params: GenerationParams;
  /** What the Response object repeats back. */
  readonly instructions: string | null;
  readonly maxOutputTokens: number | null;
  readonly metadata: JsonObject;
}

const SHARED = ['model', 'stream', 'temperature', 'top_p', 'user', 'safety_identifier', 'prompt_cache_key', 'service_tier'] as const;

const RESPONSES_FIELD_RULES: FieldRules = {
  ...Object.fromEntries(SHARED.map((key) => [key, GENERATION_FIELD_RULES[key]!])),
  input: READ,
  instructions: READ,
  max_output_tokens: READ,
  // Metadata is repeated back in the Response object; nothing is stored for it to tag.
  metadata: NO_OP,
  store: offOnly((v) => v === false, 'is not supported by this server (it stores no responses); send false or leave it out'),
  previous_response_id: offOnly(() => false, 'is not supported by this server (it stores no responses); send the whole conversation as "input"'),
  conversation: offOnly(() => false, 'is not supported by this server (it stores no conversations); send the whole conversation as "input"'),
  background: offOnly((v) => v === false, 'is not supported by this server (it runs responses while the request is open); send false or leave it out'),
  truncation: offOnly((v) => v === 'disabled', 'is not supported by this server beyond "disabled" (a prompt over the context is refused)'),
  text: offOnly((v) => isObject(v) && Object.keys(v).every((k) => k === 'format') && (v['format'] === undefined || (isObject(v['format']) && v['format']['type'] === 'text')), 'is not supported by this server beyond {"format": {"type": "text"}} (structured output); remove it'),
  tools: offOnly((v) => Array.isArray(v) && v.length === 0, 'is not supported by this server on /v1/responses (tools); use /v1/chat/completions for tools'),
  tool_choice: offOnly((v) => v === 'none' || v === 'auto', 'is not supported by this server on /v1/responses beyond "none" and "auto" (it takes no tools)'),
  // Without tools there is no call to run in parallel or not.
  parallel_tool_calls: offOnly((v) => typeof v === 'boolean', 'must be true or false'),
  max_tool_calls: offOnly(() => false, 'is not supported by this server on /v1/responses (it takes no tools); remove it'),
  reasoning: offOnly(() => false, 'is not supported by this server (its chat templates take no reasoning effort); remove it'),
  include: offOnly((v) => Array.isArray(v) && v.length === 0, 'is not supported by this server (it has no extra output to include); remove it'),
  top_logprobs: offOnly((v) => v === 0, 'is not supported by this server on /v1/responses; use /v1/chat/completions for log-probabilities'),
};

const ROLES = new Set(['user', 'system', 'developer', 'assistant']);
/** Keys of a message item besides role and content: its type, and the id and status of an earlier output item. */
const MESSAGE_KEYS = new Set(['type', 'role', 'content', 'id', 'status']);

export function parseResponsesRequest(raw: unknown, vocabSize: number): ResponsesRequest {
  const body = requireObject(raw);
  checkFields(body, RESPONSES_FIELD_RULES, 'POST /v1/responses');
  const model = requireString(body, 'model');
  const instructions = optionalString(body, 'instructions') ?? null;
  const metadata = body['metadata'] ?? {};
  if (!isObject(metadata)) throw invalidRequest('"metadata" must be an object of string keys and values.', 'metadata');
  const params = parseGenerationParams(body, ['max_output_tokens'], undefined, vocabSize, { bestOf: undefined, logprobs: null, echo: false, guided: null });
  const messages = [...(instructions === null ? [] : [{ role: 'system', content: instructions }]), ...inputMessages(body['input'])];
  return { model, messages, params, instructions, maxOutputTokens: params.maxTokens ?? null, metadata };
}

function inputMessages(input: unknown): ChatMessage[] {
  if (typeof input === 'string') return [{ role: 'user', content: input }];
  if (!Array.isArray(input) || input.length === 0) throw invalidRequest('"input" must be a string or a non-empty array of message items.', 'input');
  return input.map((item, i) => message(item, `input[${i}]`));
}

function message(item: unknown, param: string): ChatMessage {
  const m = requireObject(item, param);
  const type = m['type'] ?? 'message';
  if (type === 'item_reference') {
    throw invalidRequest(`${param} refers to a stored item, and this server stores none; send the item itself (with the AI SDK, providerOptions.openai.store: false).`, param);
  }
  if (type !== 'message') throw invalidRequest(`${param} is a "${String(type)}" item; this server's /v1/responses takes message items only (use /v1/chat/completions for tools).`, `${param}.type`);
  for (const key of Object.keys(m)) if (!MESSAGE_KEYS.has(key)) throw invalidRequest(`${param}.${key} is not a field of a message item; remove it.`, `${param}.${key}`, 'unknown_parameter');
  const role = m['role'];
  if (typeof role !== 'string' || !ROLES.has(role)) throw invalidRequest(`${param}.role must be "user", "system", "developer" or "assistant".`, `${param}.role`);
  // OpenAI: developer messages are what system messages were, for models without a developer turn of their own.
  return { role: role === 'developer' ? 'system' : role, content: contentText(m['content'], `${param}.content`) };
}

/** A string, or text parts (input_text in requests, output_text in earlier answers), joined. */
function contentText(v: unknown, param: string): string {
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) throw invalidRequest(`${param} must be a string or an array of content parts.`, param);
  return v
    .map((part, j) => {
      if (!isObject(part) || (part['type'] !== 'input_text' && part['type'] !== 'output_text') || typeof part['text'] !== 'string') {
        throw invalidRequest(`${param}[${j}] must be {"type": "input_text", "text": "..."}; this server reads text only.`, `${param}[${j}]`);
      }
      return part['text'];
    })
    .join('');
}
