import type { SafetensorsFile } from '../io/safetensors.js';
import { loadTensor } from '../models/weights.js';
import type { Module } from '../nn/module.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { rankMismatch } from './adapter-check.js';
import { adapterStateEntries, entryTensor, loraFactorKeys, type AdapterStateEntry } from './adapter-state.js';
import { factorRank, zeroWeights, type AdapterTarget, type AdapterWeightsFactory } from './adapter-weights.js';
import type { ResolvedLoraConfig } from './config.js';
import { PeftError } from './errors.js';
import { overwriteTensor } from './tensor-copy.js';

/**
 * Placeholders for an adapter about to be loaded from `file`, made only after the file is seen to hold each
 * layer's A [r, in] and B [out, r] for the r that `configPath` gives the layer: a rank the file does not back
 * (r = 1e12 over rank-8 tensors) is refused before anything of that size is allocated.
 */
export function storedAdapterPlaceholders(file: SafetensorsFile, configPath: string, device: string): AdapterWeightsFactory {
  const zeros = zeroWeights(device, { magnitude: true });
  return (target) => {
    assertStoredFactors(file, configPath, target);
    return zeros(target);
  };
}

function assertStoredFactors(file: SafetensorsFile, configPath: string, target: AdapterTarget): void {
  const r = factorRank(target);
  const keys = loraFactorKeys(target.path, target.kind ?? 'linear');
  for (const [key, needed, rankDim] of [[keys.a, [r, target.inFeatures], 0], [keys.b, [target.outFeatures, r], 1]] as const) {
    if (!file.has(key)) throw missingKey(file, key);
    const found = file.info(key).shape;
    if (shapesEqual(found, needed)) continue;
    const otherDim = 1 - rankDim;
    if (found.length === 2 && found[otherDim] === needed[otherDim]) throw rankMismatch(configPath, target.path, r, file, key, found, rankDim);
    throw wrongShape(file, key, found, target.path, needed);
  }
}

function missingKey(file: SafetensorsFile, key: string): PeftError {
  return new PeftError(`${file.path} lacks ${key}, which its adapter_config.json implies; save the adapter again.`);
}

function wrongShape(file: SafetensorsFile, key: string, found: readonly number[], modulePath: string, needed: readonly number[]): PeftError {
  return new PeftError(`${file.path}: ${key} has shape ${formatShape(found)}, but module ${modulePath} of this base model needs ${formatShape(needed)}; the adapter was trained for a different base model.`);
}

/** An adapter's tensors read from its file and checked, ready to replace the placeholders of a just-injected adapter. */
export interface PreparedAdapterTensors {
  /** Puts every tensor into the model (nothing left to fail). */
  install(): void;
  /** Frees the tensors when the load is abandoned. */
  dispose(): void;
}

/**
 * Reads the tensors of adapter_model.safetensors for a just-injected adapter `name` (whose tensors are placeholders
 * of the right shapes), after checking that every key is expected, none is missing and every shape fits; every
 * tensor the adapter owns is scanned for NaN and infinity. Nothing in the model changes until `install`, so a
 * failure here leaves the model as the injection left it. Adapter tensors keep the file's dtype; base biases
 * (bias "all"/"lora_only") are overwritten in the model's dtype.
 */
export async function prepareAdapterTensors(model: Module, name: string, config: ResolvedLoraConfig, file: SafetensorsFile): Promise<PreparedAdapterTensors> {
  const entries = adapterStateEntries(model, name, config);
  const expected = new Set(entries.map((e) => e.key));
  const unexpected = file.names().filter((k) => !expected.has(k));
  if (unexpected.length > 0) {
    throw new PeftError(
      `${file.path} holds ${unexpected.length} tensor(s) for modules this base model does not have or its adapter_config.json does not target (e.g. ${unexpected[0]}); the adapter was trained for a different model.`,
    );
  }
  for (const e of entries) {
    if (!file.has(e.key)) throw missingKey(file, e.key);
    const found = file.info(e.key).shape;
    const needed = entryTensor(e).shape;
    if (!shapesEqual(found, needed)) throw wrongShape(file, e.key, found, e.modulePath, needed);
  }
  const loaded: { entry: AdapterStateEntry; tensor: Tensor }[] = [];
  const dispose = () => {
    for (const { tensor } of loaded) tensor.dispose();
  };
  try {
    for (const e of entries) {
      const current = entryTensor(e);
      const scan = e.ownedByAdapter ? 'all' : 'small';
      loaded.push({ entry: e, tensor: await loadTensor(file, e.key, e.ownedByAdapter ? null : current.dtype, current.device, undefined, scan) });
    }
  } catch (err) {
    dispose();
    throw err;
  }
  return {
    install() {
      for (const { entry, tensor } of loaded) {
        const current = entryTensor(entry);
        if (entry.ownedByAdapter) {
          current.dispose();
          entry.owner.setParameter(entry.param, tensor);
        } else {
          overwriteTensor(current, tensor);
          tensor.dispose();
        }
      }
    },
    dispose,
  };
}
