import type { ChatMessage } from '../tokenizer/index.js';
import { invalidRequest } from './api-error.js';
import { GENERATION_FIELD_RULES, MAX_LOGPROBS, parseGenerationParams, type GenerationParams } from './generation-params.js';
import { GUIDED_FIELD_RULES, parseGuidedDecoding } from './guided-fields.js';
import { isObject, optionalBoolean, optionalInteger, requireObject, requireString } from './json-fields.js';
import { checkFields, offOnly, READ, type FieldRules } from './request-fields.js';
import { parseToolFields, TOOL_FIELD_RULES, type ToolRequest } from './tools/tool-fields.js';
import { toolMessageFields } from './tools/tool-messages.js';

/** A POST /v1/chat/completions body after validation. */
export interface ChatRequest {
  readonly model: string;
  /** Messages with their content flattened to text; other fields reach the chat template unchanged. */
  readonly messages: readonly ChatMessage[];
  readonly params: GenerationParams;
  /** null without tools. */
  readonly tools: ToolRequest | null;
}

/** Every field of a chat body and what it is to this server (the test of refused fields walks it). */
export const CHAT_FIELD_RULES: FieldRules = {
  ...GENERATION_FIELD_RULES,
  ...GUIDED_FIELD_RULES,
  ...TOOL_FIELD_RULES,
  messages: READ,
  max_tokens: READ,
  max_completion_tokens: READ,
  logprobs: READ,
  top_logprobs: READ,
  modalities: offOnly((v) => Array.isArray(v) && v.length === 1 && v[0] === 'text', 'is not supported by this server beyond ["text"] (it reads and writes text only)'),
  reasoning_effort: offOnly(() => false, 'is not supported by this server (its chat templates take no reasoning effort); remove it'),
};

export function parseChatRequest(raw: unknown, vocabSize: number): ChatRequest {
  const body = requireObject(raw);
  checkFields(body, CHAT_FIELD_RULES, 'POST /v1/chat/completions');
  const model = requireString(body, 'model');
  const wantsLogprobs = optionalBoolean(body, 'logprobs') ?? false;
  const top = optionalInteger(body, 'top_logprobs', 0, MAX_LOGPROBS);
  if (top !== undefined && !wantsLogprobs) throw invalidRequest('"top_logprobs" needs "logprobs": true.', 'top_logprobs');
  const tools = parseToolFields(body);
  const guided = parseGuidedDecoding(body);
  if (guided && tools && tools.choice !== 'none' && (tools.choice !== 'auto' || tools.strict)) {
    const what = tools.choice === 'auto' ? '"strict" tools (whose calls are held to their schemas)' : '"tool_choice" (which forces tool calls)';
    throw invalidRequest(`${what} and "${guided.field}" both constrain the output; send one of them.`, guided.field);
  }
  const params = parseGenerationParams(body, ['max_tokens', 'max_completion_tokens'], undefined, vocabSize, {
    bestOf: undefined,
    logprobs: wantsLogprobs ? (top ?? 0) : null,
    echo: false,
    guided,
  });
  // Llama 3's <|python_tag|> and Mistral's [TOOL_CALLS] are special tokens: the parser must see them (as vLLM does).
  const keepSpecial = tools !== null && tools.choice !== 'none' && (body['skip_special_tokens'] === undefined || body['skip_special_tokens'] === null);
  return { model, messages: parseMessages(body['messages']), params: keepSpecial ? { ...params, skipSpecialTokens: false } : params, tools };
}

function parseMessages(v: unknown): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) throw invalidRequest('"messages" must be a non-empty array of {role, content} objects.', 'messages');
  return v.map((m, i) => {
    const param = `messages[${i}]`;
    const msg = requireObject(m, param);
    const role = msg['role'];
    if (typeof role !== 'string' || role.length === 0) throw invalidRequest(`${param}.role must be a non-empty string.`, `${param}.role`);
    // OpenAI: developer messages are what system messages were, for models without a developer turn of their own.
    return {
      ...msg,
      ...toolMessageFields(msg, role, param),
      role: role === 'developer' ? 'system' : role,
      content: contentText(msg['content'], `${param}.content`),
    };
  });
}

/** A string, null (assistant turns), or an array of text parts, joined. */
function contentText(v: unknown, param: string): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) throw invalidRequest(`${param} must be a string or an array of content parts.`, param);
  return v
    .map((part, j) => {
      if (!isObject(part) || part['type'] !== 'text' || typeof part['text'] !== 'string') {
        throw invalidRequest(`${param}[${j}] must be {"type": "text", "text": "..."}; this server reads text only.`, `${param}[${j}]`);
      }
      return part['text'];
    })
    .join('');
}
