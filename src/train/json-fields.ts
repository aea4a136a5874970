import { readFile } from 'node:fs/promises';
import { TrainingError } from './errors.js';

export type JsonObject = Record<string, unknown>;

/**
 * One JSON object file, read as a mapping. A missing file, text that is not JSON and JSON that is not an object
 * are each one sentence naming `path`, ending in `fix` (what the user should do).
 */
export async function readJsonObject(path: string, fix: string): Promise<JsonObject> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TrainingError(code === 'ENOENT' ? `${path} is missing; ${fix}.` : `${path} cannot be read (${(err as Error).message}); ${fix}.`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new TrainingError(`${path} is not valid JSON (${(err as Error).message}); ${fix}.`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TrainingError(`${path} must hold a JSON object, not ${JSON.stringify(value).slice(0, 40)}; ${fix}.`);
  return value as JsonObject;
}

/** Typed reads of one file's fields; each failure is one sentence naming the file and the field (dotted path). */
export class JsonFields {
  constructor(
    readonly path: string,
    private readonly json: JsonObject,
    private readonly fix: string,
  ) {}

  fail(field: string, what: string): never {
    throw new TrainingError(`${this.path}: "${field}" ${what}; ${this.fix}.`);
  }

  /** "is missing", or "must be <kind>, not <value>". */
  private wrong(field: string, v: unknown, kind: string): never {
    return this.fail(field, v === undefined ? 'is missing' : `must be ${kind}, not ${JSON.stringify(v).slice(0, 40)}`);
  }

  /** The value at a dotted path (undefined where any part is absent). */
  get(field: string): unknown {
    let v: unknown = this.json;
    for (const key of field.split('.')) v = typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject)[key] : undefined;
    return v;
  }

  /** An integer >= min; `fallback` stands in for an absent field (none: the field is required). */
  integer(field: string, min = 0, fallback?: number): number {
    const v = this.get(field) ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.wrong(field, v, `an integer >= ${min}`);
    return v as number;
  }

  finite(field: string): number {
    const v = this.get(field);
    if (typeof v !== 'number' || !Number.isFinite(v)) this.wrong(field, v, 'a number');
    return v as number;
  }

  /** null when absent or null. */
  nullable<T extends 'number' | 'string'>(field: string, type: T): (T extends 'number' ? number : string) | null {
    const v = this.get(field);
    if (v === undefined || v === null) return null;
    if (typeof v !== type || (type === 'number' && !Number.isFinite(v))) this.wrong(field, v, `a ${type} or null`);
    return v as (T extends 'number' ? number : string);
  }

  /** A list of finite numbers. */
  numbers(field: string, fallback?: number[]): number[] {
    const v = this.get(field) ?? fallback;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) this.wrong(field, v, 'a list of numbers');
    return v as number[];
  }
}

