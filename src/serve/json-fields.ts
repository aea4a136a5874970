import { invalidRequest } from './api-error.js';

/** A parsed JSON request body; every read goes through the typed readers below, which name the field on error. */
export type JsonObject = Readonly<Record<string, unknown>>;

export function requireObject(value: unknown, param: string | null = null): JsonObject {
  if (!isObject(value)) {
    throw invalidRequest(param ? `"${param}" must be a JSON object.` : 'The request body must be a JSON object.', param);
  }
  return value;
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}

export function optionalString(body: JsonObject, key: string): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalidRequest(`"${key}" must be a string, got ${typeName(v)}.`, key);
  return v;
}

export function requireString(body: JsonObject, key: string): string {
  const v = optionalString(body, key);
  if (v === undefined || v.length === 0) throw invalidRequest(`"${key}" is required and must be a non-empty string.`, key);
  return v;
}

export function optionalBoolean(body: JsonObject, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw invalidRequest(`"${key}" must be true or false, got ${typeName(v)}.`, key);
  return v;
}

/** A finite number within [min, max] (inclusive), or undefined when absent or null. */
export function optionalNumber(body: JsonObject, key: string, min: number, max: number): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidRequest(`"${key}" must be a number, got ${typeName(v)}.`, key);
  if (v < min || v > max) throw invalidRequest(`"${key}" must be between ${min} and ${max}, got ${v}.`, key);
  return v;
}

export function optionalInteger(body: JsonObject, key: string, min: number, max: number): number | undefined {
  const v = optionalNumber(body, key, min, max);
  if (v !== undefined && !Number.isInteger(v)) throw invalidRequest(`"${key}" must be an integer, got ${v}.`, key);
  return v;
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
