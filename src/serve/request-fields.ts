import { invalidRequest } from './api-error.js';
import type { JsonObject } from './json-fields.js';

/**
 * What a request field is to this server: `read` (a parser implements it), `noOp` (OpenAI documents it as changing
 * nothing in the output: abuse-monitoring ids, tags of stored completions), or `offOnly` (accepted only holding the
 * value that means "off"; any other value is refused with `refusal`, the rest of a sentence naming the field).
 * A field missing from an endpoint's rules is refused as unknown, so nothing a client sends is silently ignored.
 */
export type FieldRule =
  | { readonly kind: 'read' }
  | { readonly kind: 'noOp' }
  | { readonly kind: 'offOnly'; readonly isOff: (v: unknown) => boolean; readonly refusal: string };

export type FieldRules = Readonly<Record<string, FieldRule>>;

export const READ: FieldRule = { kind: 'read' };
export const NO_OP: FieldRule = { kind: 'noOp' };

export function offOnly(isOff: (v: unknown) => boolean, refusal: string): FieldRule {
  return { kind: 'offOnly', isOff, refusal };
}

/** Throws a 400 naming the first field of `body` that `rules` refuses; null values count as absent. */
export function checkFields(body: JsonObject, rules: FieldRules, route: string): void {
  for (const [key, value] of Object.entries(body)) {
    const rule = Object.hasOwn(rules, key) ? rules[key]! : null;
    if (!rule) throw invalidRequest(`"${key}" is not a field of ${route} requests on this server; remove it.`, key, 'unknown_parameter');
    if (rule.kind === 'offOnly' && value !== null && !rule.isOff(value)) throw invalidRequest(`"${key}" ${rule.refusal}.`, key, 'unsupported_parameter');
  }
}
