import { bytesPerElement, dtypeFromSafetensors, DTYPES, dtypeToSafetensors } from '../tensor/dtype.js';
import { FormatError } from './errors.js';
import type { TensorInfo } from './tensor-source.js';

/** The same cap as the Rust `safetensors` crate: a longer header is treated as corruption, not allocated. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Bytes of the little-endian u64 header length that starts every safetensors file. */
export const LENGTH_PREFIX_BYTES = 8;

export interface ParsedHeader {
  metadata: Record<string, string>;
  /** In header order. */
  tensors: TensorInfo[];
}

/** The error for a file that breaks the format: what is wrong, and how to get a good file. */
export function invalidSafetensors(path: string, what: string, fix = 're-export it with the safetensors library'): FormatError {
  return new FormatError(path, `${path} is not a valid safetensors file: ${what}; ${fix}.`);
}

const SUPPORTED = DTYPES.map(dtypeToSafetensors).join(', ');

/**
 * Validates a safetensors header the way the Rust crate does: every tensor's byte range matches dtype x shape,
 * and the ranges, sorted by start, tile the data section exactly (no gap, no overlap, nothing past its end).
 * `headerBytes` are the bytes the 8-byte length prefix announced; `fileSize` is the size of the whole file.
 */
export function parseSafetensorsHeader(path: string, headerBytes: Uint8Array, fileSize: number): ParsedHeader {
  const dataStart = LENGTH_PREFIX_BYTES + headerBytes.byteLength;
  const dataSize = fileSize - dataStart;
  const fail = (what: string, fix?: string): never => {
    throw invalidSafetensors(path, what, fix);
  };

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    return fail('its header is not UTF-8 text');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return fail(`its header is not JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return fail('its header is not a JSON object');

  let metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(entry, fail);
      continue;
    }
    tensors.push(parseTensorEntry(path, name, entry, dataStart, fail));
  }

  const byStart = [...tensors].sort((a, b) => a.dataOffset - b.dataOffset || a.byteLength - b.byteLength);
  let expected = dataStart;
  for (const t of byStart) {
    if (t.dataOffset !== expected) {
      const relative = t.dataOffset - dataStart;
      return fail(
        t.dataOffset < expected
          ? `tensor "${t.name}" starts at data offset ${relative}, inside the bytes of another tensor`
          : `tensor "${t.name}" starts at data offset ${relative}, leaving a gap of ${t.dataOffset - expected} bytes after the previous tensor`,
      );
    }
    expected += t.byteLength;
  }
  if (expected - dataStart !== dataSize) {
    return fail(
      expected - dataStart > dataSize
        ? `its tensors need ${expected - dataStart} bytes of data but the file holds only ${dataSize} after the header`
        : `it holds ${dataSize} bytes of data after the header but its tensors use only ${expected - dataStart}`,
      expected - dataStart > dataSize ? 'the file is truncated, download or save it again' : undefined,
    );
  }
  return { metadata, tensors };
}

function parseMetadata(entry: unknown, fail: (what: string) => never): Record<string, string> {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return fail('"__metadata__" is not an object');
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(entry as Record<string, unknown>)) {
    if (typeof value !== 'string') return fail(`"__metadata__.${key}" is not a string`);
    out[key] = value;
  }
  return out;
}

function parseTensorEntry(
  path: string,
  name: string,
  entry: unknown,
  dataStart: number,
  fail: (what: string) => never,
): TensorInfo {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return fail(`the entry of tensor "${name}" is not an object`);
  const { dtype: dtypeName, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (typeof dtypeName !== 'string') return fail(`tensor "${name}" has no "dtype" string`);
  const dtype = dtypeFromSafetensors(dtypeName);
  if (dtype === null) {
    throw new FormatError(
      path,
      `Tensor "${name}" in ${path} has dtype ${dtypeName}, which loraforge cannot load; convert the checkpoint to one of ${SUPPORTED}.`,
    );
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) return fail(`tensor "${name}" has a "shape" that is not a list of non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    return fail(`tensor "${name}" has "data_offsets" that are not two non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) return fail(`tensor "${name}" has data_offsets [${begin}, ${end}] that end before they begin`);
  const numel = (shape as number[]).reduce((a, b) => a * b, 1);
  const expectedBytes = numel * bytesPerElement(dtype);
  if (!Number.isSafeInteger(expectedBytes) || expectedBytes !== end - begin) {
    return fail(
      `tensor "${name}" (${dtypeName} [${(shape as number[]).join(', ')}]) needs ${expectedBytes} bytes but its data_offsets [${begin}, ${end}] span ${end - begin}`,
    );
  }
  return { name, dtype, shape: [...(shape as number[])], dataOffset: dataStart + begin, byteLength: end - begin };
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
