import { join } from 'node:path';
import { writeAll, writeFileAtomically } from '../io/atomic-write.js';
import { copyCompanionFiles } from '../io/companion-files.js';
import { fromParsedJson, pythonJsonDumps } from '../io/python-json.js';
import type { SafetensorsEntry } from '../io/safetensors-writer.js';
import { writeShardedCheckpoint } from '../io/sharded-writer.js';
import type { CausalLM } from '../models/causal-lm.js';
import { MoeExperts, SparseMoeBlock } from '../models/moe.js';
import { storedMoeTensors } from '../models/moe-weights.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import { PeftError } from './errors.js';
import { LoraExperts } from './lora-experts.js';
import { LoraLinear } from './lora-linear.js';
import { ModulesToSaveWrapper } from './modules-to-save.js';
import { tensorBytes } from './tensor-copy.js';

export interface SaveModelOptions {
  /** Largest shard in bytes of tensor data; default 5 GB (5e9), transformers' historical max_shard_size. */
  maxShardBytes?: number;
  /** A model folder whose tokenizer and generation files are copied next to the weights (e.g. the base model's). */
  copyFilesFrom?: string;
}

/**
 * Saves the model as a Hugging Face checkpoint that transformers and this project load: model.safetensors (or shards
 * plus index) under transformers' parameter names, config.json with the saved dtype, and the companion files.
 * LoRA layers (expert adapters too) contribute their base layer's weights (merge first to export the adapted model); modules-to-save
 * wrappers contribute the copy in use.
 */
export async function saveModelPretrained(model: CausalLM, dir: string, options: SaveModelOptions = {}): Promise<void> {
  if (model.config.raw['quantization_config'] !== undefined) {
    throw new PeftError('This model is quantized; exporting a merged checkpoint needs the base model loaded unquantized, so load it with a float dtype and merge there.');
  }
  const entries: SafetensorsEntry[] = [...plainParameters(model, '', model)].map(([name, t]) => ({ name, dtype: t.dtype, shape: [...t.shape], data: () => tensorBytes(t) }));
  await writeShardedCheckpoint(dir, entries, { maxShardBytes: options.maxShardBytes ?? 5e9, metadata: { format: 'pt' } });
  const raw: Record<string, unknown> = { ...model.config.raw };
  raw['torch_dtype' in raw && !('dtype' in raw) ? 'torch_dtype' : 'dtype'] = model.dtype;
  // transformers' to_json_string: json.dumps(indent=2, sort_keys=True) + "\n".
  const configText = new TextEncoder().encode(pythonJsonDumps(fromParsedJson(raw), 2) + '\n');
  await writeFileAtomically(join(dir, 'config.json'), (handle) => writeAll(handle, configText));
  if (options.copyFilesFrom) await copyCompanionFiles(options.copyFilesFrom, dir);
}

/**
 * Parameters under the names the plain model's checkpoint has, looking through LoRA layers and modules-to-save
 * wrappers; a sparse MoE block's under its checkpoint names (Mixtral's block_sparse_moe.experts.N.w1, ...).
 */
function* plainParameters(module: Module, prefix: string, model: CausalLM): Generator<[string, Tensor]> {
  if (module instanceof LoraLinear) return yield* plainParameters(module.base_layer, prefix, model);
  if (module instanceof ModulesToSaveWrapper) return yield* plainParameters(module.layerInUse(), prefix, model);
  if (module instanceof SparseMoeBlock) {
    const experts = module.experts instanceof LoraExperts ? module.experts.base_layer : module.experts;
    if (!(experts instanceof MoeExperts)) throw new PeftError(`${prefix} holds experts of an unknown kind (${experts.constructor.name}), which a checkpoint cannot store.`);
    const layer = prefix.slice(0, prefix.lastIndexOf('.'));
    for (const [path, t] of storedMoeTensors(model.config, module.router, experts)) yield [`${layer}.${path}`, t];
    return;
  }
  const qualified = (name: string) => (prefix ? `${prefix}.${name}` : name);
  for (const name of module.ownParameterNames()) {
    const t = module.getParameter(name);
    if (t) yield [qualified(name), t];
  }
  for (const [name, child] of module.namedChildren()) yield* plainParameters(child, qualified(name), model);
}
