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
  | { readonly kind: 'choice'; readonly choices: readonly string[]; readonly field: string };
