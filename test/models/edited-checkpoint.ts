import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { writeSafetensors } from '../../src/io/safetensors-writer.js';
import type { DType } from '../../src/tensor/dtype.js';

/** One stored tensor of a folder being edited: raw little-endian bytes. */
export interface StoredTensor {
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}

export interface FolderEdit {
  /** The JSON file to patch: "config.json" (default) or "adapter_config.json". */
  readonly jsonName?: string;
  /** Keys set in that file; a value of undefined removes the key. */
  readonly json?: Readonly<Record<string, unknown>>;
  /** Rewrites the patched file's text (for what JSON.stringify cannot write: NaN, 1e400). */
  readonly jsonText?: (text: string) => string;
  /** The weights file to edit: "model.safetensors" (default) or "adapter_model.safetensors". */
  readonly weightsName?: string;
  /** Edits the tensors in place (delete, add, replace). */
  readonly tensors?: (tensors: Map<string, StoredTensor>) => void;
}

/**
 * Copies the folder `from` to `to` and applies `edit`: a patched JSON file and a rewritten weights file (a valid
 * safetensors file holding the edited tensors), so each case differs from the fixture in exactly what it says.
 */
export async function editedFolder(from: string, to: string, edit: FolderEdit): Promise<string> {
  await cp(from, to, { recursive: true });
  const jsonPath = join(to, edit.jsonName ?? 'config.json');
  if (edit.json || edit.jsonText) {
    const json = JSON.parse(await readFile(jsonPath, 'utf8')) as Record<string, unknown>;
    for (const [key, value] of Object.entries(edit.json ?? {})) {
      if (value === undefined) delete json[key];
      else json[key] = value;
    }
    const text = JSON.stringify(json, null, 2);
    await writeFile(jsonPath, edit.jsonText ? edit.jsonText(text) : text);
  }
  if (edit.tensors) {
    const path = join(to, edit.weightsName ?? 'model.safetensors');
    const tensors = await readTensors(path);
    edit.tensors(tensors);
    await writeSafetensors(path, [...tensors].map(([name, t]) => ({ name, ...t })), { format: 'pt' });
  }
  return to;
}

export async function readTensors(path: string): Promise<Map<string, StoredTensor>> {
  const file = await SafetensorsFile.open(path);
  try {
    const out = new Map<string, StoredTensor>();
    for (const name of file.names()) {
      const { dtype, shape } = file.info(name);
      out.set(name, { dtype, shape, data: await file.read(name) });
    }
    return out;
  } finally {
    await file.close();
  }
}

/** Sets float32 element `index` of tensor `name` to `value` (NaN, Infinity). */
export function poison(tensors: Map<string, StoredTensor>, name: string, value: number, index = 0): void {
  const t = tensors.get(name)!;
  if (t.dtype !== 'float32') throw new Error(`poison() edits float32 tensors; ${name} is ${t.dtype}.`);
  new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4)[index] = value;
}

/** Re-stores float32 tensor `name` as int32 of the same shape (values rounded). */
export function asInt32(tensors: Map<string, StoredTensor>, name: string): void {
  const t = tensors.get(name)!;
  const values = new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4);
  tensors.set(name, { dtype: 'int32', shape: t.shape, data: new Uint8Array(Int32Array.from(values, (v) => Math.round(v * 1e6)).buffer) });
}

/** A float32 tensor of zeros. */
export function zerosTensor(shape: number[]): StoredTensor {
  return { dtype: 'float32', shape, data: new Uint8Array(shape.reduce((a, b) => a * b, 1) * 4) };
}
