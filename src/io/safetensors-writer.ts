import type { DType } from '../tensor/dtype.js';
import { writeAll, writeFileAtomically } from './atomic-write.js';
import { planSafetensors, tensorByteLength } from './safetensors-layout.js';

export interface SafetensorsEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** Little-endian bytes, or a function producing them when the writer reaches this tensor (so only one is in memory). */
  data: Uint8Array | (() => Promise<Uint8Array>);
}

/**
 * Writes a .safetensors file byte-identical to Python's `safetensors.torch.save_file` for the same tensors and
 * metadata (metadata keys in the given order). Tensors are written one at a time; the file appears atomically.
 * Omitting `metadata` writes no `__metadata__` key, as `save_file(..., metadata=None)` does.
 */
export async function writeSafetensors(path: string, entries: readonly SafetensorsEntry[], metadata?: Record<string, string>): Promise<void> {
  const { header, order } = planSafetensors(entries, metadata);
  await writeFileAtomically(path, async (handle) => {
    await writeAll(handle, header);
    for (const entry of order) {
      const bytes = typeof entry.data === 'function' ? await entry.data() : entry.data;
      const expected = tensorByteLength(entry);
      if (bytes.byteLength !== expected) {
        throw new Error(
          `Tensor "${entry.name}" (${entry.dtype} [${entry.shape.join(', ')}]) needs ${expected} bytes but ${bytes.byteLength} were given; ${path} was not written.`,
        );
      }
      await writeAll(handle, bytes);
    }
  });
}
