import { invalidRequest } from './api-error.js';
import { GRAMMAR_BACKEND } from './grammar/grammar-engine.js';
import type { GuidedDecoding } from './grammar/guided-decoding.js';
import { engineJsonSchema } from './grammar/json-schema-support.js';
import { isObject, optionalString, type JsonObject } from './json-fields.js';
import { offOnly, READ, type FieldRules } from './request-fields.js';

/** Structured-output fields, the same on both endpoints: read by parseGuidedDecoding. */
export const GUIDED_FIELD_RULES: FieldRules = {
  response_format: READ,
  guided_json: READ,
  guided_regex: READ,
  guided_grammar: READ,
  guided_choice: READ,
  guided_decoding_backend: READ,
  guided_whitespace_pattern: offOnly(() => false, 'is not supported by this server (its JSON grammars allow no whitespace outside strings but the separators ", " and ": "); remove it'),
};

const JSON_SCHEMA_FIELDS = new Set(['name', 'schema', 'strict', 'description']);

/**
 * The output constraint a body asks for, or null: response_format (json_object, json_schema; "text" is none) or
 * one of vLLM's guided_json, guided_regex, guided_grammar, guided_choice. Two of them are refused, naming both.
 * A JSON schema's keywords are checked here (a 400 before the grammar is compiled), and the schema rewritten as the
 * engine is to compile it.
 */
export function parseGuidedDecoding(body: JsonObject): GuidedDecoding | null {
  const backend = optionalString(body, 'guided_decoding_backend');
  if (backend !== undefined && backend !== GRAMMAR_BACKEND) {
    throw invalidRequest(`"guided_decoding_backend" is "${backend}"; this server's one grammar engine is "${GRAMMAR_BACKEND}": send that or leave the field out.`, 'guided_decoding_backend');
  }
  const found = [responseFormat(body['response_format']), guidedJson(body['guided_json']), text(body, 'guided_regex'), text(body, 'guided_grammar'), choice(body['guided_choice'])].filter(
    (g): g is GuidedDecoding => g !== null,
  );
  if (found.length > 1) throw invalidRequest(`"${found[0]!.field}" and "${found[1]!.field}" both constrain the output; send one of them.`, found[1]!.field);
  const guided = found[0] ?? null;
  return guided?.kind === 'json_schema' ? { ...guided, schema: engineJsonSchema(guided.schema, guided.field) } : guided;
}

function responseFormat(v: unknown): GuidedDecoding | null {
  if (v === undefined || v === null) return null;
  if (!isObject(v)) throw invalidRequest('"response_format" must be an object such as {"type": "json_object"}.', 'response_format');
  const extra = Object.keys(v).find((k) => k !== 'type' && k !== 'json_schema');
  if (extra !== undefined) throw invalidRequest(`"response_format.${extra}" is not a field of response_format; remove it.`, 'response_format');
  const type = v['type'];
  if (type !== 'json_schema' && v['json_schema'] !== undefined) throw invalidRequest(`"response_format.json_schema" goes with "type": "json_schema", not ${JSON.stringify(type)}; remove one.`, 'response_format');
  if (type === 'text') return null;
  if (type === 'json_object') return { kind: 'json_object', field: 'response_format' };
  if (type !== 'json_schema') throw invalidRequest(`"response_format.type" must be "text", "json_object" or "json_schema", got ${JSON.stringify(type)}.`, 'response_format');
  const spec = v['json_schema'];
  if (!isObject(spec)) throw invalidRequest('"response_format.json_schema" must be an object with "name" and "schema".', 'response_format');
  const unknown = Object.keys(spec).find((k) => !JSON_SCHEMA_FIELDS.has(k));
  if (unknown !== undefined) throw invalidRequest(`"response_format.json_schema.${unknown}" is not a field of json_schema; remove it.`, 'response_format');
  if (typeof spec['name'] !== 'string' || spec['name'].length === 0) throw invalidRequest('"response_format.json_schema.name" is required and must be a non-empty string.', 'response_format');
  for (const key of ['strict', 'description'] as const) {
    const want = key === 'strict' ? 'boolean' : 'string';
    if (spec[key] !== undefined && spec[key] !== null && typeof spec[key] !== want) {
      throw invalidRequest(`"response_format.json_schema.${key}" must be a ${want}.`, 'response_format');
    }
  }
  const schema = spec['schema'];
  if (!isObject(schema) && typeof schema !== 'boolean') throw invalidRequest('"response_format.json_schema.schema" is required and must be a JSON Schema object.', 'response_format');
  return { kind: 'json_schema', schema, field: 'response_format' };
}

/** vLLM's guided_json: a schema object, or its JSON text. */
function guidedJson(v: unknown): GuidedDecoding | null {
  if (v === undefined || v === null) return null;
  let schema: unknown = v;
  if (typeof v === 'string') {
    try {
      schema = JSON.parse(v) as unknown;
    } catch {
      throw invalidRequest('"guided_json" is a string that is not JSON; send the schema as an object or as its JSON text.', 'guided_json');
    }
  }
  if (!isObject(schema) && typeof schema !== 'boolean') throw invalidRequest('"guided_json" must be a JSON Schema: an object, or its JSON text.', 'guided_json');
  return { kind: 'json_schema', schema, field: 'guided_json' };
}

function text(body: JsonObject, key: 'guided_regex' | 'guided_grammar'): GuidedDecoding | null {
  const v = optionalString(body, key);
  if (v === undefined) return null;
  if (v.length === 0) throw invalidRequest(`"${key}" must not be empty.`, key);
  return key === 'guided_regex' ? { kind: 'regex', pattern: v, field: key } : { kind: 'grammar', ebnf: v, field: key };
}

function choice(v: unknown): GuidedDecoding | null {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v) || v.length === 0 || v.some((c) => typeof c !== 'string' || c.length === 0)) {
    throw invalidRequest('"guided_choice" must be a non-empty array of non-empty strings.', 'guided_choice');
  }
  return { kind: 'choice', choices: v as string[], field: 'guided_choice' };
}
