import { invalidRequest } from '../api-error.js';
import type { GuidedDecoding } from '../grammar/guided-decoding.js';
import { engineJsonSchema } from '../grammar/json-schema-support.js';
import { isObject, type JsonObject } from '../json-fields.js';
import type { ToolCallSyntax } from './tool-call-syntax.js';

/** What tool_choice asks of the output: "auto" and "none" leave it free, "required" and a named function force calls. */
export type ToolChoice = 'auto' | 'none' | 'required' | { readonly name: string };

/** A function without parameters takes none: its arguments are {}. */
const NO_PARAMETERS: JsonObject = { type: 'object', properties: {}, additionalProperties: false };

/**
 * The grammar that forces tool calls in `syntax`'s written form: under "required" one or more calls (one under
 * parallel_tool_calls false) of any of the tools, under a named function one call of it. Each call is the object
 * {"name": ..., "arguments": ...} (Llama 3's "parameters") as the template writes it, its name one of the
 * functions and its arguments kept to that function's `parameters` schema, whatever `strict` says: the grammar
 * allows no property the schema does not name. A schema keyword the engine cannot enforce is refused, naming the tool.
 */
export function toolCallGuide(syntax: ToolCallSyntax, definitions: readonly JsonObject[], choice: 'required' | { readonly name: string }, maxCalls: number): GuidedDecoding {
  const { argumentsKey } = syntax.written;
  const cases = definitions.flatMap((tool, i) => {
    const fn = tool['function'] as JsonObject;
    const name = fn['name'] as string;
    if (choice !== 'required' && choice.name !== name) return [];
    return [
      {
        type: 'object',
        properties: { name: { const: name }, [argumentsKey]: argumentsSchema(fn['parameters'], `tools[${i}].function.parameters`) },
        required: ['name', argumentsKey],
        additionalProperties: false,
      },
    ];
  });
  const call = cases.length === 1 ? cases[0]! : { anyOf: cases };
  return { kind: 'tool_calls', call, written: syntax.written, multiple: choice === 'required' && maxCalls > 1, field: 'tools' };
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
