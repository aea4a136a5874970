import { compareCodePoints } from './code-point-order.js';

/**
 * A number that Python holds as a float: written as repr(x) ("0.0", "1e-05"). JavaScript has one number type, so
 * plain numbers are written as Python ints and must be integral.
 */
export class PythonFloat {
  constructor(readonly value: number) {}
}

/** JSON values as Python's json module writes them. */
export type PythonJsonValue = string | number | boolean | null | PythonFloat | PythonJsonValue[] | { [key: string]: PythonJsonValue };

/**
 * `json.dumps(value, indent=indent, sort_keys=True)` byte for byte: keys sorted by code point, separators
 * ", " / ": " replaced by "," + newline and ": ", and every character outside printable ASCII escaped as
 * \\uXXXX (ensure_ascii, UTF-16 units, lowercase hex).
 */
export function pythonJsonDumps(value: PythonJsonValue, indent: number): string {
  return format(value, indent, 0);
}

function format(value: PythonJsonValue, indent: number, depth: number): string {
  if (typeof value === 'string') return quote(value);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new RangeError(`pythonJsonDumps writes integers only, got ${value}.`);
    return String(value);
  }
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (value === null) return 'null';
  if (value instanceof PythonFloat) return pythonFloatRepr(value.value);
  const inner = '\n' + ' '.repeat(indent * (depth + 1));
  const outer = '\n' + ' '.repeat(indent * depth);
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[${inner}${value.map((v) => format(v, indent, depth + 1)).join(`,${inner}`)}${outer}]`;
  }
  const keys = Object.keys(value).sort(compareCodePoints);
  if (keys.length === 0) return '{}';
  return `{${inner}${keys.map((k) => `${quote(k)}: ${format(value[k]!, indent, depth + 1)}`).join(`,${inner}`)}${outer}}`;
}

function quote(text: string): string {
  return JSON.stringify(text).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * A value from JSON.parse in the form Python's json would write it back: integral numbers as ints, others as
 * floats (after parsing, 1.0 and 1 cannot be told apart, so 1.0 comes back as 1).
 */
export function fromParsedJson(value: unknown): PythonJsonValue {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : new PythonFloat(value);
  if (typeof value === 'string' || typeof value === 'boolean' || value === null) return value;
  if (Array.isArray(value)) return value.map(fromParsedJson);
  if (typeof value === 'object') return Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, fromParsedJson(v)]));
  throw new TypeError(`${typeof value} is not a JSON value.`);
}

/**
 * Python's repr of a float, as json.dumps writes it: the shortest digits that round-trip (JavaScript's shortest
 * form has the same digits), fixed notation when the decimal exponent is in [-4, 16), otherwise d.ddde±XX with at
 * least two exponent digits; integral values keep ".0"; non-finite values as NaN, Infinity, -Infinity.
 */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  if (x === 0) return `${sign}0.0`;
  const [mantissa, exponentText] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  const exponent = Number(exponentText);
  const decimalPoint = exponent + 1;
  if (decimalPoint <= -4 || decimalPoint > 16) {
    const fraction = digits.length > 1 ? `.${digits.slice(1)}` : '';
    const expSign = exponent < 0 ? '-' : '+';
    return `${sign}${digits[0]}${fraction}e${expSign}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  if (decimalPoint <= 0) return `${sign}0.${'0'.repeat(-decimalPoint)}${digits}`;
  if (decimalPoint >= digits.length) return `${sign}${digits}${'0'.repeat(decimalPoint - digits.length)}.0`;
  return `${sign}${digits.slice(0, decimalPoint)}.${digits.slice(decimalPoint)}`;
}
