import type { ChatMessage } from '../../tokenizer/index.js';
import { ApiError, invalidRequest } from '../api-error.js';
import { GENERATION_FIELD_RULES, parseGenerationParams, type GenerationParams } from '../generation-params.js';
import { isObject, optionalString, requireObject, requireString, type JsonObject } from '../json-fields.js';
import { checkFields, NO_OP, offOnly, READ, type FieldRules } from '../request-fields.js';
import { parseJson } from '../tools/json-value-end.js';
import { parseToolFields, type ToolRequest } from '../tools/tool-fields.js';

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
  /** Function tools, read as chat's are; null without tools. */
  readonly tools: ToolRequest | null;
  /** What the Response object repeats back: the tools as sent, tool_choice, parallel_tool_calls. */
  readonly toolEcho: { readonly tools: readonly unknown[]; readonly toolChoice: unknown; readonly parallelToolCalls: boolean };
}

const SHARED = ['model', 'stream', 'temperature', 'top_p', 'user', 'safety_identifier', 'prompt_cache_key', 'service_tier'] as const;

/** Every field of a Responses body and what it is to this server. */
export const RESPONSES_FIELD_RULES: FieldRules = {
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
  tools: READ,
  tool_choice: READ,
  parallel_tool_calls: READ,
  max_tool_calls: offOnly(() => false, 'is not supported by this server (calls are bounded by max_output_tokens and parallel_tool_calls); remove it'),
  reasoning: offOnly(() => false, 'is not supported by this server (its chat templates take no reasoning effort); remove it'),
  include: offOnly((v) => Array.isArray(v) && v.length === 0, 'is not supported by this server (it has no extra output to include); remove it'),
  top_logprobs: offOnly((v) => v === 0, 'is not supported by this server on /v1/responses; use /v1/chat/completions for log-probabilities'),
};

const ROLES = new Set(['user', 'system', 'developer', 'assistant']);
/** Keys of each input item type: besides its own fields, the id and status of an earlier output item. */
const ITEM_KEYS: Readonly<Record<string, ReadonlySet<string>>> = {
  message: new Set(['type', 'role', 'content', 'id', 'status']),
  function_call: new Set(['type', 'call_id', 'name', 'arguments', 'id', 'status']),
  function_call_output: new Set(['type', 'call_id', 'output', 'id', 'status']),
};
/** A Responses function tool's fields (flat, where chat nests them under "function"). */
const TOOL_KEYS = new Set(['type', 'name', 'description', 'parameters', 'strict']);

export function parseResponsesRequest(raw: unknown, vocabSize: number): ResponsesRequest {
  const body = requireObject(raw);
  checkFields(body, RESPONSES_FIELD_RULES, 'POST /v1/responses');
  const model = requireString(body, 'model');
  const instructions = optionalString(body, 'instructions') ?? null;
  const metadata = body['metadata'] ?? {};
  if (!isObject(metadata)) throw invalidRequest('"metadata" must be an object of string keys and values.', 'metadata');
  const tools = responsesTools(body);
  const params = parseGenerationParams(body, ['max_output_tokens'], undefined, vocabSize, { bestOf: undefined, logprobs: null, echo: false, guided: null });
  const messages = [...(instructions === null ? [] : [{ role: 'system', content: instructions }]), ...inputMessages(body['input'])];
  const toolEcho = { tools: Array.isArray(body['tools']) ? body['tools'] : [], toolChoice: body['tool_choice'] ?? 'auto', parallelToolCalls: body['parallel_tool_calls'] !== false };
  // Llama 3's <|python_tag|> and Mistral's [TOOL_CALLS] are special tokens: the parser must see them.
  const kept = tools !== null && tools.choice !== 'none' ? { ...params, skipSpecialTokens: false } : params;
  return { model, messages, params: kept, instructions, maxOutputTokens: params.maxTokens ?? null, metadata, tools, toolEcho };
}

/**
 * tools, tool_choice and parallel_tool_calls in the Responses API's spelling (a function's fields beside its type,
 * tool_choice {"type": "function", "name"}), read by chat's rules; refusals name the Responses fields.
 */
function responsesTools(body: JsonObject): ToolRequest | null {
  const raw = body['tools'];
  if (raw !== undefined && raw !== null && !Array.isArray(raw)) throw invalidRequest('"tools" must be an array of {"type": "function", "name": ...} objects.', 'tools');
  const tools = (raw ?? []).map((tool: unknown, i: number) => {
    const t = requireObject(tool, `tools[${i}]`);
    if (t['type'] !== 'function') throw invalidRequest(`tools[${i}].type must be "function", the only tool type this server calls.`, `tools[${i}].type`);
    const extra = Object.keys(t).find((k) => !TOOL_KEYS.has(k));
    if (extra !== undefined) throw invalidRequest(`tools[${i}].${extra} is not a field of a function tool; remove it.`, `tools[${i}].${extra}`, 'unknown_parameter');
    // The official client sends "strict": null for unset; null fields are left out, so the template sees what chat's would.
    const fn = Object.fromEntries(Object.entries(t).filter(([k, v]) => k !== 'type' && v !== null));
    return { type: 'function', function: fn };
  });
  const choice = body['tool_choice'];
  let chatChoice: unknown = choice;
  if (isObject(choice)) {
    const extra = Object.keys(choice).find((k) => k !== 'type' && k !== 'name');
    if (choice['type'] !== 'function' || extra !== undefined) {
      throw invalidRequest('"tool_choice" must be "none", "auto", "required" or {"type": "function", "name": ...}.', 'tool_choice');
    }
    chatChoice = { type: 'function', function: { name: choice['name'] } };
  }
  return inResponsesTerms(() => parseToolFields({ tools, tool_choice: chatChoice, parallel_tool_calls: body['parallel_tool_calls'] }));
}

/**
 * Runs what reads the tools by chat's rules, its refusals respelled: chat nests a function's fields under
 * "function" (tools[0].function.strict), the Responses API sets them on the tool and on tool_choice (tools[0].strict).
 */
export function inResponsesTerms<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    const flat = (text: string) => text.replace(/(tools\[\d+\]|tool_choice)\.function\./g, '$1.');
    throw new ApiError(error.status, flat(error.message), error.type, error.code, error.param === null ? null : flat(error.param));
  }
}

/** A history message as the chat template takes it: an assistant's calls, a tool's answer to one. */
type HistoryMessage = ChatMessage & { readonly tool_calls?: readonly JsonObject[]; readonly tool_call_id?: string };

function inputMessages(input: unknown): HistoryMessage[] {
  if (typeof input === 'string') return [{ role: 'user', content: input }];
  if (!Array.isArray(input) || input.length === 0) throw invalidRequest('"input" must be a string or a non-empty array of message items.', 'input');
  const messages: HistoryMessage[] = [];
  input.forEach((item, i) => {
    const m = inputItem(item, `input[${i}]`);
    const last = messages.at(-1);
    // A function call belongs to the assistant turn before it (its text, its other calls), as templates render one turn.
    if (m.tool_calls && last?.role === 'assistant') messages[messages.length - 1] = { ...last, tool_calls: [...(last.tool_calls ?? []), ...m.tool_calls] };
    else messages.push(m);
  });
  return messages;
}

function inputItem(item: unknown, param: string): HistoryMessage {
  const m = requireObject(item, param);
  const type = m['type'] ?? 'message';
  if (type === 'item_reference') {
    throw invalidRequest(`${param} refers to a stored item, and this server stores none; send the item itself (with the AI SDK, providerOptions.openai.store: false).`, param);
  }
  const keys = typeof type === 'string' ? ITEM_KEYS[type] : undefined;
  if (keys === undefined) throw invalidRequest(`${param} is a "${String(type)}" item; this server's /v1/responses takes message, function_call and function_call_output items.`, `${param}.type`);
  for (const key of Object.keys(m)) if (!keys.has(key)) throw invalidRequest(`${param}.${key} is not a field of a ${String(type)} item; remove it.`, `${param}.${key}`, 'unknown_parameter');
  if (type === 'function_call') return functionCall(m, param);
  if (type === 'function_call_output') {
    if (typeof m['call_id'] !== 'string' || m['call_id'].length === 0) throw invalidRequest(`${param}.call_id must be the call_id of the call this output answers.`, `${param}.call_id`);
    return { role: 'tool', tool_call_id: m['call_id'], content: contentText(m['output'], `${param}.output`) };
  }
  const role = m['role'];
  if (typeof role !== 'string' || !ROLES.has(role)) throw invalidRequest(`${param}.role must be "user", "system", "developer" or "assistant".`, `${param}.role`);
  // OpenAI: developer messages are what system messages were, for models without a developer turn of their own.
  return { role: role === 'developer' ? 'system' : role, content: contentText(m['content'], `${param}.content`) };
}

/** An earlier function_call item as the assistant's call, its arguments an object as chat templates take them. */
function functionCall(m: JsonObject, param: string): HistoryMessage {
  for (const key of ['call_id', 'name'] as const) {
    if (typeof m[key] !== 'string' || m[key].length === 0) throw invalidRequest(`${param}.${key} must be a non-empty string.`, `${param}.${key}`);
  }
  const args = typeof m['arguments'] === 'string' ? parseJson(m['arguments']) : undefined;
  if (!isObject(args)) throw invalidRequest(`${param}.arguments must be a JSON object as text, as the call returned it.`, `${param}.arguments`);
  return { role: 'assistant', content: '', tool_calls: [{ id: m['call_id'], type: 'function', function: { name: m['name'], arguments: args } }] };
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
