import type { SafetensorsFile } from '../io/safetensors.js';
import { assertFloatTensor } from '../models/weights.js';
import { formatShape } from '../tensor/shape.js';
import { ADAPTER_KEY_PREFIX } from './adapter-state.js';
import type { ResolvedLoraConfig } from './config.js';
import { PeftError } from './errors.js';
import { patternValue } from './targets.js';

/** A LoRA factor's key: its module path and factor name (A [r, in] keeps the rank first, B [out, r] last). */
const FACTOR = /^(.*)\.(lora_A\.weight|lora_B\.weight|lora_embedding_A|lora_embedding_B)$/;

/** The sentence for a stored factor whose rank is not the one the config gives its module. */
export function rankMismatch(configPath: string, modulePath: string, r: number, file: SafetensorsFile, key: string, found: readonly number[], rankDim: number): PeftError {
  return new PeftError(`${configPath} gives ${modulePath} rank ${r}, but ${file.path} stores ${key} as ${formatShape(found)}, of rank ${found[rankDim]}; the config does not belong to these weights, so save the adapter again.`);
}

/**
 * Checks adapter_model.safetensors against its adapter_config.json without a base model, from the headers alone:
 * every tensor is a float one, and every LoRA factor is 2-d with the rank the config (r, rank_pattern) gives its
 * module. `inspect` runs it; loading checks the same against the base model as it injects.
 */
export function checkAdapterFile(config: ResolvedLoraConfig, file: SafetensorsFile, configPath: string): void {
  for (const key of file.names()) {
    const { dtype, shape } = file.info(key);
    assertFloatTensor(file.path, key, dtype);
    const m = FACTOR.exec(key);
    if (!m || !key.startsWith(ADAPTER_KEY_PREFIX)) continue;
    const modulePath = m[1]!.slice(ADAPTER_KEY_PREFIX.length);
    const rankDim = /_A(\.weight)?$/.test(m[2]!) ? 0 : 1;
    const r = patternValue(config.rankPattern, modulePath, config.r);
    if (shape.length !== 2) throw new PeftError(`${file.path}: ${key} has shape ${formatShape(shape)}, but a LoRA factor is a matrix; save the adapter again.`);
    // An expert parameter's factors stack r per expert (PEFT's ParamWrapper); the expert count needs the base model.
    if (isExpertFactor(config, modulePath) && shape[rankDim]! % r === 0) continue;
    if (shape[rankDim] !== r) throw rankMismatch(configPath, modulePath, r, file, key, shape, rankDim);
  }
}

/** Whether a factor's module path (PEFT's nested `.base_layer`s left out) is a module that target_parameters names. */
function isExpertFactor(config: ResolvedLoraConfig, modulePath: string): boolean {
  const module = modulePath.replace(/(\.base_layer)+$/, '');
  return (config.targetParameters ?? []).some((t) => {
    const owner = t.slice(0, t.lastIndexOf('.'));
    return module === owner || module.endsWith(`.${owner}`);
  });
}
