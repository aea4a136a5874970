import { unsignedLeb128 } from './leb128.js';

/**
 * Encodes a WebAssembly module of the one shape the CPU kernels need: a fixed-size memory defined by the module
 * and exported as "memory" (so every instance owns its memory), and functions that are all exported by name.
 * Section layout and codes follow the WebAssembly 2.0 binary format (chapter 5 of the core specification).
 */

export type ValueType = 'i32' | 'f32' | 'v128';

export const VALUE_TYPE_CODES: Readonly<Record<ValueType, number>> = { i32: 0x7f, f32: 0x7d, v128: 0x7b };

export interface FunctionDefinition {
  /** The export name. */
  readonly name: string;
  readonly params: readonly ValueType[];
  readonly results: readonly ValueType[];
  /** Locals beyond the parameters, in index order. */
  readonly locals: readonly ValueType[];
  /** The instruction bytes, ending with the function's `end` (0x0b). */
  readonly body: readonly number[];
}

export interface ModuleDefinition {
  /** Size of the memory in 64 KiB pages; it cannot grow. */
  readonly memoryPages: number;
  readonly functions: readonly FunctionDefinition[];
}

const MAGIC_AND_VERSION = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
const SECTION = { type: 1, function: 3, memory: 5, export: 7, code: 10 } as const;
const FUNCTION_TYPE = 0x60;
const EXPORT_FUNCTION = 0x00;
const EXPORT_MEMORY = 0x02;
/** Limits flag: a minimum and a maximum follow. */
const LIMITS_MIN_MAX = 0x01;

export function encodeModule(definition: ModuleDefinition): Uint8Array {
  const signatures: string[] = [];
  const typeIndex = definition.functions.map((f) => {
    const key = `${f.params.join(',')}->${f.results.join(',')}`;
    const known = signatures.indexOf(key);
    if (known >= 0) return known;
    signatures.push(key);
    return signatures.length - 1;
  });
  const types = signatures.map((_, s) => {
    const f = definition.functions[typeIndex.indexOf(s)]!;
    return [FUNCTION_TYPE, ...vector(f.params.map((t) => [VALUE_TYPE_CODES[t]])), ...vector(f.results.map((t) => [VALUE_TYPE_CODES[t]]))];
  });
  const exports = [
    [...name('memory'), EXPORT_MEMORY, ...unsignedLeb128(0)],
    ...definition.functions.map((f, index) => [...name(f.name), EXPORT_FUNCTION, ...unsignedLeb128(index)]),
  ];
  const bytes = [
    ...MAGIC_AND_VERSION,
    ...section(SECTION.type, vector(types)),
    ...section(SECTION.function, vector(typeIndex.map((t) => unsignedLeb128(t)))),
    ...section(SECTION.memory, vector([[LIMITS_MIN_MAX, ...unsignedLeb128(definition.memoryPages), ...unsignedLeb128(definition.memoryPages)]])),
    ...section(SECTION.export, vector(exports)),
    ...section(SECTION.code, vector(definition.functions.map(code))),
  ];
  return Uint8Array.from(bytes);
}

/** A function body: its locals as runs of one type, then the instructions, prefixed by the byte size. */
function code(f: FunctionDefinition): number[] {
  const runs: number[][] = [];
  for (let i = 0; i < f.locals.length;) {
    let end = i;
    while (end < f.locals.length && f.locals[end] === f.locals[i]) end++;
    runs.push([...unsignedLeb128(end - i), VALUE_TYPE_CODES[f.locals[i]!]]);
    i = end;
  }
  const body = [...vector(runs), ...f.body];
  return [...unsignedLeb128(body.length), ...body];
}

function section(id: number, content: number[]): number[] {
  return [id, ...unsignedLeb128(content.length), ...content];
}

function vector(items: readonly number[][]): number[] {
  return [...unsignedLeb128(items.length), ...items.flat()];
}

function name(text: string): number[] {
  const utf8 = [...new TextEncoder().encode(text)];
  return [...unsignedLeb128(utf8.length), ...utf8];
}
