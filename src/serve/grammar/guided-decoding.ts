import type { JsonObject } from '../json-fields.js';

/**
 * What a request constrains its output to, and the body field that asked (named in refusals). Every form is
 * compiled by the grammar engine into one grammar over the tokenizer's vocabulary.
 */
export type GuidedDecoding =
  /** A JSON Schema (response_format json_schema, guided_json), as json-schema-support.ts rewrote it for the engine. */
  | { readonly kind: 'json_schema'; readonly schema: JsonObject | boolean; readonly field: string }
  /** Any JSON object (response_format json_object). */
  | { readonly kind: 'json_object'; readonly field: string }
  /** The whole output matches the regular expression (guided_regex). */
  | { readonly kind: 'regex'; readonly pattern: string; readonly field: string }
  /** xgrammar's EBNF, GBNF-like: `root ::= ...` (guided_grammar). */
  | { readonly kind: 'grammar'; readonly ebnf: string; readonly field: string }
  /** The output is one of these strings (guided_choice). */
  | { readonly kind: 'choice'; readonly choices: readonly string[]; readonly field: string }
  /**
   * Tool calls as a chat template writes them: a call of one of `functions` (each name with its arguments' JSON
   * Schema, rewritten for the engine) in the `written` form; one call, or one or more when `multiple`. `trigger`
   * null (tool_choice "required" or a named function): the output is the calls. Otherwise (tool_choice "auto" with
   * strict functions) the output is free text in which each `trigger` opens one call held to the grammar.
   */
  | { readonly kind: 'tool_calls'; readonly functions: readonly ToolFunction[]; readonly written: WrittenCalls; readonly multiple: boolean; readonly trigger: string | null; readonly field: string };

/** A function a call may name, and the schema its arguments follow. */
export interface ToolFunction {
  readonly name: string;
  readonly arguments: JsonObject;
}

/**
 * How a model family writes its tool calls. "object": `begin`, then each call as `callBegin` + the JSON object
 * {"name": ..., <argumentsKey>: {...}} + `callEnd`, `separator` between calls, then `end` (Hermes:
 * `<tool_call>\n{...}\n</tool_call>`, one line apart). "named": each call as `callBegin` + the name + `nameEnd` +
 * the arguments' JSON, back to back (Mistral's v11 tokenizer: `[TOOL_CALLS]name[ARGS]{...}`).
 */
export type WrittenCalls =
  | {
      readonly form: 'object';
      readonly begin: string;
      readonly callBegin: string;
      readonly callEnd: string;
      readonly separator: string;
      readonly end: string;
      /** The key of the call object that holds the arguments: "arguments", or Llama 3's "parameters". */
      readonly argumentsKey: 'arguments' | 'parameters';
    }
  | { readonly form: 'named'; readonly callBegin: string; readonly nameEnd: string };
