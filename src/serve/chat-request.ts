import type { ChatMessage } from '../tokenizer/index.js';
import { invalidRequest } from './api-error.js';
import { parseGenerationParams, type GenerationParams } from './generation-params.js';
import { isEmptyObject, isObject, refuseUnsupported, requireObject, requireString } from './json-fields.js';

/** A POST /v1/chat/completions body after validation. */
export interface ChatRequest {
  readonly model: string;
  /** Messages with their content flattened to text; other fields reach the chat template unchanged. */
  readonly messages: readonly ChatMessage[];
  readonly params: GenerationParams;
}

export function parseChatRequest(raw: unknown): ChatRequest {
  const body = requireObject(raw);
  const model = requireString(body, 'model');
  refuseUnsupported(body, 'n', (v) => v === 1, 'one choice per request; send several requests instead');
  refuseUnsupported(body, 'logprobs', (v) => v === false, 'log probabilities');
  refuseUnsupported(body, 'top_logprobs', (v) => v === 0, 'log probabilities');
  refuseUnsupported(body, 'logit_bias', isEmptyObject, 'logit bias');
  refuseUnsupported(body, 'tools', (v) => Array.isArray(v) && v.length === 0, 'tool calls');
  refuseUnsupported(body, 'tool_choice', (v) => v === 'none', 'tool calls');
  refuseUnsupported(body, 'response_format', (v) => isObject(v) && v['type'] === 'text', 'structured output');
  return {
    model,
    messages: parseMessages(body['messages']),
    params: parseGenerationParams(body, ['max_tokens', 'max_completion_tokens'], undefined),
  };
}

function parseMessages(v: unknown): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) throw invalidRequest('"messages" must be a non-empty array of {role, content} objects.', 'messages');
  return v.map((m, i) => {
    const param = `messages[${i}]`;
    const msg = requireObject(m, param);
    const role = msg['role'];
    if (typeof role !== 'string' || role.length === 0) throw invalidRequest(`${param}.role must be a non-empty string.`, `${param}.role`);
    return { ...msg, role, content: contentText(msg['content'], `${param}.content`) };
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
