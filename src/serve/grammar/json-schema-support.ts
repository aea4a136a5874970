import { invalidRequest } from '../api-error.js';
import { isObject, type JsonObject } from '../json-fields.js';
import { holdsRangeMarker, INTEGER_LIMIT, integerRangeSchema } from './integer-range.js';
import { lengthPattern, unsafePiece } from './string-pattern.js';

/** Keywords that describe a schema without constraining its instances: accepted, and change nothing. */
const ANNOTATIONS = new Set(['$schema', '$id', '$comment', '$anchor', 'title', 'description', 'default', 'examples', 'deprecated', 'readOnly', 'writeOnly']);

/** Keywords whose values are one subschema, a list of them, or a map of names to them. */
const ONE_SUBSCHEMA = new Set(['additionalProperties', 'items']);
const SUBSCHEMA_LISTS = new Set(['anyOf', 'prefixItems']);
const SUBSCHEMA_MAPS = new Set(['properties', '$defs', 'definitions']);

/** Keywords the engine enforces whose values are not subschemas. */
const VALUE_KEYWORDS = new Set(['type', 'enum', 'const', 'required', 'minLength', 'maxLength', 'pattern', 'format', 'minItems', 'maxItems', 'minProperties', 'maxProperties', '$ref']);

/** The string formats the engine spells out as grammars (any other it would ignore). */
const FORMATS = new Set(['date', 'time', 'date-time', 'duration', 'email', 'hostname', 'ipv4', 'ipv6', 'uri', 'uuid']);

/**
 * Keywords the engine (xgrammar 0.1.27) would accept without enforcing, or enforces wrongly, so that the output
 * could break the schema; each with what to do instead. Found by compiling each keyword and matching values
 * just inside and outside it. Numeric bounds are enforced wrongly for most ranges ([5, 120] lets 125 through), so
 * integer bounds are written as a grammar of their own (integer-range.ts), and bounds on other numbers refused.
 */
const REFUSED: Readonly<Record<string, string>> = {
  multipleOf: 'the grammar engine does not enforce it; remove it or list the values with "enum"',
  uniqueItems: 'the grammar engine does not enforce it; remove it',
  contains: 'the grammar engine does not enforce it; remove it',
  minContains: 'the grammar engine does not enforce it; remove it',
  maxContains: 'the grammar engine does not enforce it; remove it',
  oneOf: 'the grammar engine treats it as "anyOf", which lets a value match several branches; use "anyOf"',
  allOf: 'the grammar engine does not combine schemas; merge them into one schema',
  not: 'the grammar engine does not enforce it; remove it',
  if: 'the grammar engine does not enforce conditionals; remove "if", "then" and "else"',
  then: 'the grammar engine does not enforce conditionals; remove "if", "then" and "else"',
  else: 'the grammar engine does not enforce conditionals; remove "if", "then" and "else"',
  dependentRequired: 'the grammar engine does not enforce it; remove it',
  dependentSchemas: 'the grammar engine does not enforce it; remove it',
  dependencies: 'the grammar engine does not enforce it; remove it',
  patternProperties: 'the grammar engine does not enforce it; name the properties in "properties"',
  propertyNames: 'the grammar engine does not enforce it; name the properties in "properties"',
  unevaluatedProperties: 'the grammar engine does not read it; use "additionalProperties"',
  unevaluatedItems: 'the grammar engine does not read it; use "items"',
  nullable: 'it is OpenAPI\'s, not JSON Schema\'s; use "type": ["string", "null"] (or the type you mean with "null")',
};

/**
 * The schema as the engine is to compile it: throws a 400 naming `field`, the keyword and where it is (a JSON
 * pointer into the schema) for anything the engine would not enforce, so that every output of an accepted schema
 * validates against it. minLength and maxLength become a pattern (see lengthPattern).
 */
export function engineJsonSchema(schema: unknown, field: string): JsonObject | boolean {
  if (holdsRangeMarker(JSON.stringify(schema))) throw invalidRequest(`"${field}" holds the text this server marks integer ranges with; remove it from the schema.`, field);
  return walk(schema, '#', field);
}

const BOUNDS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'] as const;

function walk(schema: unknown, at: string, field: string): JsonObject | boolean {
  if (typeof schema === 'boolean') return schema;
  if (!isObject(schema)) throw invalidRequest(`"${field}" holds ${describe(schema)} at ${at}, where a schema (an object or a boolean) belongs; fix the schema.`, field);
  if (BOUNDS.some((key) => schema[key] !== undefined)) return integerRange(schema, at, field);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    const here = pointer(at, key);
    if (ANNOTATIONS.has(key)) continue;
    const refusal = REFUSED[key];
    if (refusal !== undefined) throw invalidRequest(`"${field}" uses the JSON Schema keyword "${key}" at ${here}, which this server cannot guarantee: ${refusal}.`, field);
    if (ONE_SUBSCHEMA.has(key)) out[key] = walk(value, here, field);
    else if (SUBSCHEMA_LISTS.has(key)) {
      if (!Array.isArray(value)) throw invalidRequest(`"${field}" has "${key}" at ${here} that is not a list of schemas; fix the schema.`, field);
      out[key] = value.map((sub, i) => walk(sub, `${here}/${i}`, field));
    } else if (SUBSCHEMA_MAPS.has(key)) {
      if (!isObject(value)) throw invalidRequest(`"${field}" has "${key}" at ${here} that is not an object of schemas; fix the schema.`, field);
      out[key] = Object.fromEntries(Object.entries(value).map(([name, sub]) => [name, walk(sub, pointer(here, name), field)]));
    } else if (VALUE_KEYWORDS.has(key)) {
      checkValue(key, value, here, field);
      out[key] = value;
    } else throw invalidRequest(`"${field}" uses "${key}" at ${here}, which is not a JSON Schema keyword this server enforces; remove it.`, field);
  }
  return withLengthPattern(out, at, field);
}

/**
 * A {"type": "integer"} schema with minimum / maximum / exclusiveMinimum / exclusiveMaximum (and annotations only),
 * as the marker of its range; bounds on anything else are refused. A side left open stops at the 16 digits the
 * grammar writes integers with.
 */
function integerRange(schema: JsonObject, at: string, field: string): JsonObject {
  const bound = BOUNDS.find((key) => schema[key] !== undefined)!;
  if (schema['type'] !== 'integer') {
    throw invalidRequest(`"${field}" uses "${bound}" at ${at} on a schema whose "type" is not "integer"; this server keeps bounds on integers only: use "type": "integer", or list the values with "enum".`, field);
  }
  const other = Object.keys(schema).find((key) => key !== 'type' && !ANNOTATIONS.has(key) && !(BOUNDS as readonly string[]).includes(key));
  if (other !== undefined) throw invalidRequest(`"${field}" has "${other}" beside "${bound}" at ${at}; an integer with bounds takes no other keyword here: drop one of them.`, field);
  const value = (key: (typeof BOUNDS)[number]): number | undefined => {
    const v = schema[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidRequest(`"${field}" has "${key}": ${JSON.stringify(v)} at ${at}; it must be a number.`, field);
    return v;
  };
  const limit = Number(INTEGER_LIMIT);
  const clamp = (v: number) => BigInt(Math.max(-limit, Math.min(limit, v)));
  const candidates = (values: (number | undefined)[], pick: (a: bigint, b: bigint) => bigint, open: bigint) => values.reduce((acc: bigint, v) => (v === undefined ? acc : pick(acc, clamp(v))), open);
  const min = value('minimum');
  const exclusiveMin = value('exclusiveMinimum');
  const max = value('maximum');
  const exclusiveMax = value('exclusiveMaximum');
  const lo = candidates([min === undefined ? undefined : Math.ceil(min), exclusiveMin === undefined ? undefined : Math.floor(exclusiveMin) + 1], (a, b) => (a > b ? a : b), -INTEGER_LIMIT);
  const hi = candidates([max === undefined ? undefined : Math.floor(max), exclusiveMax === undefined ? undefined : Math.ceil(exclusiveMax) - 1], (a, b) => (a < b ? a : b), INTEGER_LIMIT);
  if (lo > hi) throw invalidRequest(`"${field}" has bounds at ${at} that no integer (of up to 16 digits) meets; fix them.`, field);
  return integerRangeSchema(lo, hi);
}

/** minLength / maxLength as a pattern of JSON-safe characters; with a pattern or format beside them, refused. */
function withLengthPattern(schema: Record<string, unknown>, at: string, field: string): JsonObject {
  const { minLength, maxLength, ...rest } = schema;
  if (minLength === undefined && maxLength === undefined) return schema;
  const other = rest['pattern'] !== undefined ? 'pattern' : rest['format'] !== undefined ? 'format' : null;
  if (other) throw invalidRequest(`"${field}" has "${other}" beside "minLength" or "maxLength" at ${at}; the grammar engine takes one of them: write the length into a "pattern".`, field);
  const bound = (v: unknown, key: string): number | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw invalidRequest(`"${field}" has "${key}": ${JSON.stringify(v)} at ${at}; it must be a non-negative integer.`, field);
    return v;
  };
  return { ...rest, pattern: lengthPattern(bound(minLength, 'minLength') ?? 0, bound(maxLength, 'maxLength')) };
}

function pointer(at: string, key: string): string {
  return `${at}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`;
}

function checkValue(key: string, value: unknown, at: string, field: string): void {
  if (key === 'format' && !(typeof value === 'string' && FORMATS.has(value))) {
    throw invalidRequest(`"${field}" has "format": ${JSON.stringify(value)} at ${at}; this server enforces only ${[...FORMATS].map((f) => `"${f}"`).join(', ')}.`, field);
  }
  if (key === 'pattern') {
    if (typeof value !== 'string') throw invalidRequest(`"${field}" has a "pattern" at ${at} that is not a string; fix the schema.`, field);
    const piece = unsafePiece(value);
    if (piece !== null) {
      throw invalidRequest(`"${field}" has a "pattern" at ${at} whose ${JSON.stringify(piece)} can match a quote, a backslash, a control character or a character beyond ASCII, which the grammar engine cannot keep to JSON and the pattern; narrow it to printable ASCII.`, field);
    }
  }
  if (key === '$ref' && !(typeof value === 'string' && value.startsWith('#'))) {
    throw invalidRequest(`"${field}" has "$ref": ${JSON.stringify(value)} at ${at}; only references inside the schema ("#/$defs/...") are followed.`, field);
  }
}

function describe(v: unknown): string {
  return Array.isArray(v) ? 'a list' : v === null ? 'null' : `a ${typeof v}`;
}
