import { join } from 'node:path';
import { writeAll, writeFileAtomically } from '../io/atomic-write.js';
import { pathKind } from '../io/path-kind.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { writeSafetensors, type SafetensorsEntry } from '../io/safetensors-writer.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ResolvedLoraConfig } from './config.js';
import { ADAPTER_CONFIG_NAME, loraConfigToJson } from './config-json.js';
import { PeftError } from './errors.js';
import { tensorBytes } from './tensor-copy.js';

export const ADAPTER_WEIGHTS_NAME = 'adapter_model.safetensors';

/** PEFT's layout: the adapter called "default" is saved in `dir`, any other in `dir/<name>`. */
export function adapterFolder(dir: string, name: string): string {
  return name === 'default' ? dir : join(dir, name);
}

/**
 * Writes adapter_model.safetensors (metadata {"format": "pt"}, as PEFT writes it) and adapter_config.json
 * (inference_mode true, as PEFT saves it). Each file appears atomically; the weights are written first.
 */
export async function writeAdapterFolder(folder: string, tensors: ReadonlyMap<string, Tensor>, config: ResolvedLoraConfig): Promise<void> {
  const entries: SafetensorsEntry[] = [...tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: [...t.shape], data: () => tensorBytes(t) }));
  await writeSafetensors(join(folder, ADAPTER_WEIGHTS_NAME), entries, { format: 'pt' });
  const json = new TextEncoder().encode(loraConfigToJson(config, { inferenceMode: true }));
  await writeFileAtomically(join(folder, ADAPTER_CONFIG_NAME), (handle) => writeAll(handle, json));
}

/** Opens `<dir>/adapter_model.safetensors`; an adapter saved only as adapter_model.bin is refused with the fix. */
export async function openAdapterWeights(dir: string): Promise<SafetensorsFile> {
  const path = join(dir, ADAPTER_WEIGHTS_NAME);
  if ((await pathKind(path)) !== 'file') {
    throw new PeftError(`${dir} has no ${ADAPTER_WEIGHTS_NAME}; loraforge loads adapters saved as safetensors (PEFT's default), so save the adapter with safe_serialization=True.`);
  }
  return SafetensorsFile.open(path);
}
