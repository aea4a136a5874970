import { invalidRequest } from '../api-error.js';
import { isObject, requireObject, type JsonObject } from '../json-fields.js';
import { parseJson } from './json-value-end.js';

/**
 * The tool fields of one history message, checked: an assistant's `tool_calls` with each call's arguments parsed
 * from JSON text into an object (chat templates write them with `tojson`, as transformers and vLLM pass them), and
 * a tool message's `tool_call_id`. Returns the fields that replace the message's own.
 */
export function toolMessageFields(msg: JsonObject, role: string, param: string): Record<string, unknown> {
  if (role === 'tool' && typeof msg['tool_call_id'] !== 'string') {
    throw invalidRequest(`${param}.tool_call_id must be the id of the call this message answers.`, `${param}.tool_call_id`);
  }
  const calls = msg['tool_calls'];
  if (calls === undefined || calls === null) return {};
  if (role !== 'assistant') throw invalidRequest(`${param}.tool_calls belongs on assistant messages only; remove it.`, `${param}.tool_calls`);
  if (!Array.isArray(calls)) throw invalidRequest(`${param}.tool_calls must be an array of {id, type: "function", function: {name, arguments}}.`, `${param}.tool_calls`);
  return { tool_calls: calls.map((call, j) => toolCall(call, `${param}.tool_calls[${j}]`)) };
}

function toolCall(call: unknown, param: string): JsonObject {
  const c = requireObject(call, param);
  if (typeof c['id'] !== 'string') throw invalidRequest(`${param}.id must be a string.`, `${param}.id`);
  if (c['type'] !== 'function') throw invalidRequest(`${param}.type must be "function".`, `${param}.type`);
  const fn = requireObject(c['function'], `${param}.function`);
  if (typeof fn['name'] !== 'string' || fn['name'].length === 0) throw invalidRequest(`${param}.function.name must be a non-empty string.`, `${param}.function.name`);
  const args = typeof fn['arguments'] === 'string' ? parseJson(fn['arguments']) : undefined;
  if (!isObject(args)) throw invalidRequest(`${param}.function.arguments must be a JSON object as text, as the call returned it.`, `${param}.function.arguments`);
  return { ...c, function: { ...fn, arguments: args } };
}
