import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ResolvedLoraConfig } from './config.js';
import { LoraEmbedding } from './lora-embedding.js';
import { LoraExperts } from './lora-experts.js';
import { LoraLinear } from './lora-linear.js';
import { TrainableTokensWrapper } from './trainable-tokens.js';
import { ModulesToSaveWrapper } from './modules-to-save.js';
import { walkModules } from './module-walk.js';

/** Every key of adapter_model.safetensors starts with this: the path of the base model inside PEFT's PeftModel. */
export const ADAPTER_KEY_PREFIX = 'base_model.model.';

/** The keys of a layer's two LoRA factors, A [r, in] and B [out, r]: lora_A/B.weight on a linear layer, lora_embedding_A/B on an embedding. */
export function loraFactorKeys(path: string, kind: 'linear' | 'embedding'): { a: string; b: string } {
  const base = `${ADAPTER_KEY_PREFIX}${path}`;
  return kind === 'embedding' ? { a: `${base}.lora_embedding_A`, b: `${base}.lora_embedding_B` } : { a: `${base}.lora_A.weight`, b: `${base}.lora_B.weight` };
}

/** One tensor of an adapter as PEFT saves it, and where it lives in the model. */
export interface AdapterStateEntry {
  /** Key in adapter_model.safetensors, e.g. base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight. */
  readonly key: string;
  /** Module path in the base model, for messages. */
  readonly modulePath: string;
  readonly owner: Module;
  readonly param: string;
  /** Adapter tensors are replaced when loading; base-model tensors (biases under bias "all"/"lora_only") are overwritten in place. */
  readonly ownedByAdapter: boolean;
  /** Saved with the adapter but never trained (an adapted embedding's base weight, PEFT's save_embedding_layers). */
  readonly savedOnly?: boolean;
}

export function entryTensor(e: AdapterStateEntry): Tensor {
  const t = e.owner.getParameter(e.param);
  if (!t) throw new Error(`Internal error: ${e.key} has no tensor.`);
  return t;
}

/**
 * The tensors PEFT's get_peft_model_state_dict saves for adapter `name`: lora_A/lora_B (and lora_B's bias), DoRA's
 * magnitude (saved without ".weight"), trainable copies of modules_to_save, and base biases when bias is "all" or
 * "lora_only". Keys carry no adapter name.
 */
export function adapterStateEntries(model: Module, name: string, config: ResolvedLoraConfig): AdapterStateEntry[] {
  const entries: AdapterStateEntry[] = [];
  const add = (modulePath: string, keyPath: string, owner: Module | undefined, param: string, ownedByAdapter: boolean, savedOnly = false) => {
    if (owner?.getParameter(param)) entries.push({ key: `${ADAPTER_KEY_PREFIX}${keyPath}`, modulePath, owner, param, ownedByAdapter, savedOnly });
  };
  for (const { path, module } of walkModules(model)) {
    if (module instanceof LoraLinear) {
      if (module.hasAdapter(name)) {
        add(path, `${path}.lora_A.weight`, module.lora_A.get(name), 'weight', true);
        add(path, `${path}.lora_B.weight`, module.lora_B.get(name), 'weight', true);
        add(path, `${path}.lora_B.bias`, module.lora_B.get(name), 'bias', true);
        add(path, `${path}.lora_magnitude_vector`, module.lora_magnitude_vector.get(name), 'weight', true);
      }
      if (config.bias !== 'none') add(path, `${path}.base_layer.bias`, module.base_layer, 'bias', false);
      if (path === 'lm_head' && savesEmbeddingLayers(config)) add(path, `${path}.base_layer.weight`, module.base_layer, 'weight', false, true);
    } else if (module instanceof LoraExperts) {
      if (module.hasAdapter(name)) {
        for (const p of module.parameters) {
          const keyPath = module.keyPath(path, p);
          add(path, `${keyPath}.lora_A.weight`, module.factor(p, 'A', name), 'weight', true);
          add(path, `${keyPath}.lora_B.weight`, module.factor(p, 'B', name), 'weight', true);
        }
      }
    } else if (module instanceof LoraEmbedding) {
      if (module.hasAdapter(name)) {
        add(path, `${path}.lora_embedding_A`, module.lora_embedding_A.get(name), 'weight', true);
        add(path, `${path}.lora_embedding_B`, module.lora_embedding_B.get(name), 'weight', true);
      }
      if (savesEmbeddingLayers(config)) add(path, `${path}.base_layer.weight`, module.base_layer, 'weight', false, true);
    } else if (module instanceof TrainableTokensWrapper) {
      add(path, `${path}.token_adapter.trainable_tokens_delta`, module.token_adapter.trainable_tokens_delta.get(name), 'weight', true);
    } else if (module instanceof ModulesToSaveWrapper) {
      const copy = module.modules_to_save.get(name);
      for (const param of copy?.ownParameterNames() ?? []) add(path, `${path}.${param}`, copy, param, true);
    } else if (config.bias === 'all' && path !== '') {
      add(path, `${path}.bias`, module, 'bias', false);
    }
  }
  return entries;
}

/**
 * PEFT's save_embedding_layers="auto": when target_modules names an embedding layer ("embed_tokens" or "lm_head";
 * a regex string is tested as a substring, as Python's `in` does), the adapted embedding layers' base weights are
 * saved with the adapter (`<path>.base_layer.weight`).
 */
function savesEmbeddingLayers(config: ResolvedLoraConfig): boolean {
  const t = config.targetModules;
  if (t === null) return false;
  return ['embed_tokens', 'lm_head'].some((k) => (typeof t === 'string' ? t.includes(k) : t.includes(k)));
}
