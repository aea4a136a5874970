import { invalidRequest } from '../api-error.js';
import type { GuidedDecoding, ToolFunction } from '../grammar/guided-decoding.js';
import { engineJsonSchema } from '../grammar/json-schema-support.js';
import { isObject, type JsonObject } from '../json-fields.js';
import type { ToolCallSyntax } from './tool-call-syntax.js';

/** What tool_choice asks of the output: "auto" and "none" leave it free, "required" and a named function force calls. */
export type ToolChoice = 'auto' | 'none' | 'required' | { readonly name: string };

/** A function without parameters takes none: its arguments are {}. */
const NO_PARAMETERS: JsonObject = { type: 'object', properties: {}, additionalProperties: false };

/**
 * The grammar that forces tool calls in `syntax`'s written form: under "required" one or more calls (one under
 * parallel_tool_calls false) of any of the tools, under a named function one call of it. Each call names one of
 * the functions and its arguments keep to that function's `parameters` schema, whatever `strict` says: the grammar
 * allows no property the schema does not name. A schema keyword the engine cannot enforce is refused, naming the tool.
 */
export function toolCallGuide(syntax: ToolCallSyntax, definitions: readonly JsonObject[], choice: 'required' | { readonly name: string }, maxCalls: number): GuidedDecoding {
  return { kind: 'tool_calls', functions: toolFunctions(definitions, choice), written: syntax.written, multiple: choice === 'required' && maxCalls > 1, trigger: null, field: 'tools' };
}

/**
 * Under tool_choice "auto" with a strict function: the model writes freely, and each call it opens is held to the
 * grammar of a call of any of the tools (every function's arguments then follow its schema, strict or not). Only
 * syntaxes whose every call opens with a tag of its own can be triggered; the others are refused.
 */
export function strictAutoGuide(syntax: ToolCallSyntax, definitions: readonly JsonObject[], maxCalls: number): GuidedDecoding {
  const { written } = syntax;
  const trigger = written.form === 'named' ? written.callBegin : syntax.openers.find((o) => written.begin === '' && o.length > 0 && written.callBegin.startsWith(o));
  if (trigger === undefined) {
    const i = definitions.findIndex((d) => (d['function'] as JsonObject)['strict'] === true);
    throw invalidRequest(
      `tools[${i}].function.strict true under "tool_choice": "auto" needs calls that each open with a tag, and ${syntax.name} calls do not; send "tool_choice": "required" or a named function, or leave strict out.`,
      `tools[${i}].function.strict`,
      'unsupported_parameter',
    );
  }
  return { kind: 'tool_calls', functions: toolFunctions(definitions, 'required'), written, multiple: maxCalls > 1, trigger, field: 'tools' };
}

/** The functions a call may name: all of them under "required", the named one otherwise; each with its arguments' schema. */
function toolFunctions(definitions: readonly JsonObject[], choice: 'required' | { readonly name: string }): ToolFunction[] {
  return definitions.flatMap((tool, i) => {
    const fn = tool['function'] as JsonObject;
    const name = fn['name'] as string;
    if (choice !== 'required' && choice.name !== name) return [];
    return [{ name, arguments: argumentsSchema(fn['parameters'], `tools[${i}].function.parameters`) }];
  });
}

/** A function's parameters as the engine compiles them: an object schema ("type" defaults to "object"). */
function argumentsSchema(parameters: unknown, field: string): JsonObject {
  if (parameters === undefined || parameters === null) return NO_PARAMETERS;
  const schema = parameters as JsonObject;
  const type = schema['type'] ?? 'object';
  if (type !== 'object') {
    throw invalidRequest(`"${field}" has "type": ${JSON.stringify(type)}; a function's parameters are an object, so its schema's "type" must be "object".`, field);
  }
  const rewritten = engineJsonSchema({ ...schema, type: 'object' }, field);
  if (!isObject(rewritten)) throw new Error('an object schema was rewritten to a boolean');
  return rewritten;
}
