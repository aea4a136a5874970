import type { SafetensorsFile } from '../io/safetensors.js';
import { loadTensor } from '../models/weights.js';
import type { Module } from '../nn/module.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import { adapterStateEntries, entryTensor } from './adapter-state.js';
import type { ResolvedLoraConfig } from './config.js';
import { PeftError } from './errors.js';
import { overwriteTensor } from './tensor-copy.js';

/**
 * Puts the tensors of adapter_model.safetensors into a just-injected adapter `name` (whose tensors are placeholders
 * of the right shapes), after checking that every key is expected, none is missing and every shape fits. Adapter
 * tensors keep the file's dtype; base biases (bias "all"/"lora_only") are overwritten in the model's dtype.
 */
export async function loadAdapterTensors(model: Module, name: string, config: ResolvedLoraConfig, file: SafetensorsFile): Promise<void> {
  const entries = adapterStateEntries(model, name, config);
  const expected = new Set(entries.map((e) => e.key));
  const unexpected = file.names().filter((k) => !expected.has(k));
  if (unexpected.length > 0) {
    throw new PeftError(
      `${file.path} holds ${unexpected.length} tensor(s) for modules this base model does not have or its adapter_config.json does not target (e.g. ${unexpected[0]}); the adapter was trained for a different model.`,
    );
  }
  for (const e of entries) {
    if (!file.has(e.key)) throw new PeftError(`${file.path} lacks ${e.key}, which its adapter_config.json implies; save the adapter again.`);
    const found = file.info(e.key).shape;
    const needed = entryTensor(e).shape;
    if (!shapesEqual(found, needed)) {
      throw new PeftError(`${file.path}: ${e.key} has shape ${formatShape(found)}, but module ${e.modulePath} of this base model needs ${formatShape(needed)}; the adapter was trained for a different base model.`);
    }
  }
  for (const e of entries) {
    const current = entryTensor(e);
    if (e.ownedByAdapter) {
      const loaded = await loadTensor(file, e.key, null, current.device);
      current.dispose();
      e.owner.setParameter(e.param, loaded);
    } else {
      const loaded = await loadTensor(file, e.key, current.dtype, current.device);
      overwriteTensor(current, loaded);
      loaded.dispose();
    }
  }
}
