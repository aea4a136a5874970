import { isObject } from './json-fields.js';
import { notYet, type FieldRules } from './request-fields.js';

/** Structured-output fields both endpoints will read once a grammar engine constrains decoding; refused until then. */
export const GUIDED_FIELD_RULES: FieldRules = {
  response_format: notYet((v) => isObject(v) && v['type'] === 'text', 'structured output; {"type": "text"} is accepted'),
  guided_json: notYet(() => false, 'structured output'),
  guided_regex: notYet(() => false, 'structured output'),
  guided_grammar: notYet(() => false, 'structured output'),
  guided_choice: notYet(() => false, 'structured output'),
  guided_decoding_backend: notYet(() => false, 'structured output'),
  guided_whitespace_pattern: notYet(() => false, 'structured output'),
};
