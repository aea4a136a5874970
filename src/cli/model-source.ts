import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CausalLM } from '../models/causal-lm.js';
import { readAdapterConfig } from '../peft/index.js';
import type { DType } from '../tensor/dtype.js';
import { BUILTIN, loadBuiltinModel } from './builtin-example.js';
import { UsageError } from './errors.js';
import { loadBaseModel } from './load-model.js';

/** Which base model a command uses: --model, else the one the adapter names, else the built-in example model. */
export async function baseModelFolder(model: string | undefined, adapter: string | undefined): Promise<string | 'builtin'> {
  if (model !== undefined) return model;
  if (adapter === undefined) return 'builtin';
  const fromConfig = (await readAdapterConfig(adapter)).baseModelNameOrPath;
  if (fromConfig) return fromConfig;
  // A run folder of `loraforge train` records its base model in training_args.json.
  const argsPath = join(adapter, 'training_args.json');
  if (existsSync(argsPath)) {
    const name = (JSON.parse(await readFile(argsPath, 'utf8')) as { model_name_or_path?: unknown }).model_name_or_path;
    if (name === 'builtin-example') return 'builtin';
    if (typeof name === 'string') return name;
  }
  throw new UsageError(`${adapter}/adapter_config.json does not name its base model (base_model_name_or_path); pass --model.`);
}

/** The base model in `folder` (or the built-in one); `qlora` quantizes its decoder projections to NF4 on load. */
export async function loadModelFrom(folder: string | 'builtin', dtype: DType | 'auto', device: string, qlora = false): Promise<CausalLM> {
  return folder === 'builtin' ? loadBuiltinModel(device, { qlora }) : loadBaseModel({ model: folder, dtype, device, qlora });
}

export function tokenizerFolder(folder: string | 'builtin'): string {
  return folder === 'builtin' ? BUILTIN.model : folder;
}
