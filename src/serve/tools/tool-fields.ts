import { invalidRequest } from '../api-error.js';
import { isObject, optionalBoolean, requireObject, type JsonObject } from '../json-fields.js';
import { READ, offOnly, type FieldRules } from '../request-fields.js';

/** A request's tools: the definitions its chat template renders, and whether the output is read for calls. */
export interface ToolRequest {
  /** As OpenAI sends them ({type: "function", function: {name, description?, parameters?}}), for the `tools` variable. */
  readonly definitions: readonly JsonObject[];
  /** tool_choice "auto": the output is parsed for calls; "none": the tools are shown to the model, the output is text. */
  readonly parse: boolean;
  /** parallel_tool_calls false: 1. */
  readonly maxCalls: number;
}

export const TOOL_FIELD_RULES: FieldRules = {
  tools: READ,
  tool_choice: READ,
  parallel_tool_calls: READ,
  functions: offOnly((v) => Array.isArray(v) && v.length === 0, 'is the deprecated form of "tools", which this server does not take; send "tools" instead'),
  function_call: offOnly((v) => v === 'none', 'is the deprecated form of "tool_choice", which this server does not take; send "tool_choice" instead'),
};

const FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
const FUNCTION_FIELDS = new Set(['name', 'description', 'parameters', 'strict']);

/** tools, tool_choice and parallel_tool_calls of a chat request; null when it gives no tools. */
export function parseToolFields(body: JsonObject): ToolRequest | null {
  const choice = toolChoice(body['tool_choice']);
  const parallel = optionalBoolean(body, 'parallel_tool_calls') ?? true;
  const raw = body['tools'];
  if (raw === undefined || raw === null) return null;
  if (!Array.isArray(raw)) throw invalidRequest('"tools" must be an array of {"type": "function", "function": {...}} objects.', 'tools');
  if (raw.length === 0) return null;
  const names = new Set<string>();
  const definitions = raw.map((tool, i) => {
    const definition = toolDefinition(tool, `tools[${i}]`);
    const { name } = definition['function'] as { name: string };
    if (names.has(name)) throw invalidRequest(`tools[${i}].function.name "${name}" is given twice; give each function once.`, `tools[${i}].function.name`);
    names.add(name);
    return definition;
  });
  return { definitions, parse: choice === 'auto', maxCalls: parallel ? Number.POSITIVE_INFINITY : 1 };
}

/** "auto" (the default) or "none"; "required" and named functions need constrained decoding to be kept. */
function toolChoice(v: unknown): 'auto' | 'none' {
  if (v === undefined || v === null || v === 'auto' || v === 'none') return v === 'none' ? 'none' : 'auto';
  if (v === 'required' || (isObject(v) && v['type'] === 'function')) {
    const what = v === 'required' ? '"required"' : 'a named function';
    throw invalidRequest(
      `"tool_choice" ${what} would need constrained decoding to guarantee a call, which this server does not do; send "auto" (the model decides) or "none".`,
      'tool_choice',
      'unsupported_parameter',
    );
  }
  throw invalidRequest('"tool_choice" must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}.', 'tool_choice');
}

function toolDefinition(tool: unknown, param: string): JsonObject {
  const t = requireObject(tool, param);
  for (const key of Object.keys(t)) {
    if (key !== 'type' && key !== 'function') throw invalidRequest(`${param}.${key} is not a field of a tool; remove it.`, `${param}.${key}`, 'unknown_parameter');
  }
  if (t['type'] !== 'function') throw invalidRequest(`${param}.type must be "function", the only tool type this server calls.`, `${param}.type`);
  const fn = requireObject(t['function'], `${param}.function`);
  for (const key of Object.keys(fn)) {
    if (!FUNCTION_FIELDS.has(key)) throw invalidRequest(`${param}.function.${key} is not a field of a function; remove it.`, `${param}.function.${key}`, 'unknown_parameter');
  }
  const { name, description, parameters, strict } = fn;
  if (typeof name !== 'string' || !FUNCTION_NAME.test(name)) {
    throw invalidRequest(`${param}.function.name must be 1 to 64 letters, digits, underscores or dashes.`, `${param}.function.name`);
  }
  if (description !== undefined && description !== null && typeof description !== 'string') throw invalidRequest(`${param}.function.description must be a string.`, `${param}.function.description`);
  if (parameters !== undefined && parameters !== null && !isObject(parameters)) throw invalidRequest(`${param}.function.parameters must be a JSON Schema object.`, `${param}.function.parameters`);
  if (strict === true) {
    throw invalidRequest(`${param}.function.strict true would need constrained decoding to keep the arguments to the schema, which this server does not do; send false or leave it out.`, `${param}.function.strict`, 'unsupported_parameter');
  }
  if (strict !== undefined && strict !== null && strict !== false) throw invalidRequest(`${param}.function.strict must be true or false.`, `${param}.function.strict`);
  return t;
}
