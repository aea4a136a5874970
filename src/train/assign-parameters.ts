import { decodeTensor } from '../io/decode.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { fromHost, writeSlice } from '../ops/index.js';
import type { HostArray } from '../tensor/buffer.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * Overwrites each parameter, in place, with the tensor of the same name in a safetensors file (a checkpoint's
 * adapter_model.safetensors). In place, so optimizer and model keep referring to the same tensors.
 */
export async function assignParametersFromFile(params: ReadonlyMap<string, Tensor>, path: string): Promise<void> {
  const file = await SafetensorsFile.open(path);
  try {
    for (const [name, p] of params) {
      if (!file.has(name)) throw new Error(`${path} has no tensor "${name}"; the checkpoint was written for a different adapter configuration.`);
      const { dtype, shape } = file.info(name);
      if (shape.length !== p.shape.length || shape.some((d, i) => d !== p.shape[i])) {
        throw new Error(`${path}: "${name}" has shape ${formatShape(shape)} but the model's parameter has ${formatShape(p.shape)}.`);
      }
      const src = fromHost(decodeTensor(dtype, await file.read(name)) as HostArray, shape, dtype, p.device);
      writeSlice(p, 0, 0, src);
      src.dispose();
    }
  } finally {
    await file.close();
  }
}
