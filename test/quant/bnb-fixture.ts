import type { TensorInfo, TensorSource } from '../../src/io/tensor-source.js';
import type { RawTensor } from '../../src/quant/quant-state.js';
import { fixturePath, readFixtureTensor } from '../helpers/fixtures.js';

export const BNB_DIR = fixturePath('tiny-llama-bnb-4bit');
export const DENSE_DIR = fixturePath('tiny-llama');
export const BNB_REF = 'tiny-llama-bnb-4bit-ref.safetensors';
export const STATE_SUFFIX = '.quant_state.bitsandbytes__nf4';

/** The reference batch `input_ids` [3, 24] as rows of numbers. */
export async function referenceInputIds(): Promise<number[][]> {
  const ids = await readFixtureTensor(BNB_REF, 'input_ids');
  const [rows, cols] = ids.shape as [number, number];
  const data = ids.data as BigInt64Array;
  return Array.from({ length: rows }, (_, b) => Array.from(data.subarray(b * cols, (b + 1) * cols), Number));
}

/** Every tensor of a safetensors file, raw. */
export { readTensors as readAllTensors } from '../models/edited-checkpoint.js';

/** A TensorSource over tensors held in memory (for checkpoints edited by a test). */
export function memorySource(tensors: ReadonlyMap<string, RawTensor>): TensorSource {
  const info = (name: string): TensorInfo => {
    const t = tensors.get(name);
    if (!t) throw new Error(`Tensor "${name}" is not in the test source.`);
    return { name, dtype: t.dtype, shape: [...t.shape], dataOffset: 0, byteLength: t.data.byteLength };
  };
  return {
    names: () => [...tensors.keys()],
    has: (name) => tensors.has(name),
    info,
    read: async (name) => {
      info(name);
      return tensors.get(name)!.data.slice();
    },
    close: async () => {},
  };
}

export { tempDir } from '../io/tmp.js';
