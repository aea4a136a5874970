import { invalidRequest } from '../api-error.js';
import { isObject, optionalBoolean, requireObject, type JsonObject } from '../json-fields.js';
import { READ, offOnly, type FieldRules } from '../request-fields.js';
import type { ToolChoice } from './tool-call-guide.js';

/** A request's tools: the definitions its chat template renders, and whether the output is read for calls. */
export interface ToolRequest {
  /** As OpenAI sends them ({type: "function", function: {name, description?, parameters?}}), for the `tools` variable. */
  readonly definitions: readonly JsonObject[];
  /**
   * tool_choice. "auto": the output is parsed for calls; "none": the tools are shown to the model, the output is
   * text; "required" and a named function: the output is held to calls by a grammar, and parsed.
   */
  readonly choice: ToolChoice;
  /** parallel_tool_calls false: 1. */
  readonly maxCalls: number;
  /** Some function has strict true: under "auto" each call the model opens is held to the calls' grammar. */
  readonly strict: boolean;
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
  if (raw !== undefined && raw !== null && !Array.isArray(raw)) throw invalidRequest('"tools" must be an array of {"type": "function", "function": {...}} objects.', 'tools');
  if (raw === undefined || raw === null || raw.length === 0) {
    if (choice === 'auto' || choice === 'none') return null;
    throw invalidRequest(`"tool_choice" ${describeChoice(choice)} needs the functions it may call in "tools"; send them, or leave "tool_choice" out.`, 'tool_choice');
  }
  const names = new Set<string>();
  const definitions = raw.map((tool, i) => {
    const definition = toolDefinition(tool, `tools[${i}]`, choice);
    const { name } = definition['function'] as { name: string };
    if (names.has(name)) throw invalidRequest(`tools[${i}].function.name "${name}" is given twice; give each function once.`, `tools[${i}].function.name`);
    names.add(name);
    return definition;
  });
  if (typeof choice === 'object' && !names.has(choice.name)) {
    throw invalidRequest(`"tool_choice" names the function "${choice.name}", which is not among "tools" (${[...names].map((n) => `"${n}"`).join(', ')}); name one of them.`, 'tool_choice');
  }
  const strict = definitions.some((d) => (d['function'] as JsonObject)['strict'] === true);
  return { definitions, choice, maxCalls: parallel ? Number.POSITIVE_INFINITY : 1, strict };
}

/** "auto" (the default), "none", "required", or {"type": "function", "function": {"name": ...}}. */
function toolChoice(v: unknown): ToolChoice {
  if (v === undefined || v === null) return 'auto';
  if (v === 'auto' || v === 'none' || v === 'required') return v;
  const shape = '"tool_choice" must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}.';
  if (!isObject(v)) throw invalidRequest(shape, 'tool_choice');
  const extra = Object.keys(v).find((k) => k !== 'type' && k !== 'function');
  if (extra !== undefined) throw invalidRequest(`"tool_choice.${extra}" is not a field of tool_choice; remove it.`, `tool_choice.${extra}`, 'unknown_parameter');
  if (v['type'] !== 'function') throw invalidRequest(shape, 'tool_choice');
  const fn = v['function'];
  if (!isObject(fn) || typeof fn['name'] !== 'string' || fn['name'].length === 0) throw invalidRequest('"tool_choice.function.name" must name one of the tools\' functions.', 'tool_choice.function.name');
  const fnExtra = Object.keys(fn).find((k) => k !== 'name');
  if (fnExtra !== undefined) throw invalidRequest(`"tool_choice.function.${fnExtra}" is not a field of tool_choice.function; remove it.`, `tool_choice.function.${fnExtra}`, 'unknown_parameter');
  return { name: fn['name'] };
}

function describeChoice(choice: ToolChoice): string {
  return typeof choice === 'object' ? `naming "${choice.name}"` : `"${choice}"`;
}

function toolDefinition(tool: unknown, param: string, choice: ToolChoice): JsonObject {
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
  if (strict !== undefined && strict !== null && typeof strict !== 'boolean') throw invalidRequest(`${param}.function.strict must be true or false.`, `${param}.function.strict`);
  // Under "none" no call is read, so there are no arguments to keep to the schema.
  if (strict === true && choice === 'none') {
    throw invalidRequest(
      `${param}.function.strict true keeps a call's arguments to the schema, and "tool_choice" "none" reads no calls; send "auto", "required" or a named function, or leave strict out.`,
      `${param}.function.strict`,
      'unsupported_parameter',
    );
  }
  return t;
}
