import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DType } from '../../src/tensor/dtype.js';
import { decodeTensor, type TensorData } from '../../src/io/decode.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';

/** The folder holding package.json: tests run compiled from dist/test/helpers/, sources sit in test/helpers/. */
function findProjectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`No package.json above ${fileURLToPath(import.meta.url)}; cannot locate test/fixtures.`);
    dir = parent;
  }
  return dir;
}

export const PROJECT_ROOT = findProjectRoot();

/** Absolute path of a file or folder under test/fixtures/, e.g. fixturePath('tiny-llama', 'config.json'). */
export function fixturePath(...parts: string[]): string {
  return join(PROJECT_ROOT, 'test', 'fixtures', ...parts);
}

export interface FixtureTensor {
  dtype: DType;
  shape: number[];
  /** bfloat16 and float16 come back as their raw 16-bit patterns (Uint16Array). */
  data: TensorData;
}

/** `file` is relative to test/fixtures/ (e.g. 'tiny-llama-ref.safetensors') or absolute. */
export async function readFixtureTensor(file: string, name: string): Promise<FixtureTensor> {
  const st = await SafetensorsFile.open(resolveFixture(file));
  try {
    const { dtype, shape } = st.info(name);
    return { dtype, shape, data: decodeTensor(dtype, await st.read(name)) };
  } finally {
    await st.close();
  }
}

export async function readFixtureMetadata(file: string): Promise<Record<string, string>> {
  const st = await SafetensorsFile.open(resolveFixture(file));
  await st.close();
  return st.metadata;
}

function resolveFixture(file: string): string {
  return isAbsolute(file) ? file : fixturePath(file);
}
