import type { Module } from '../nn/module.js';
import { LoraEmbedding } from './lora-embedding.js';
import { LoraExperts } from './lora-experts.js';
import { LoraLinear } from './lora-linear.js';
import { ModulesToSaveWrapper } from './modules-to-save.js';
import { TrainableTokensWrapper } from './trainable-tokens.js';

/** A module of the base model with where it hangs: its dotted path, its parent and its name in the parent. */
export interface ModuleSite {
  readonly path: string;
  readonly module: Module;
  readonly parent: Module | null;
  readonly name: string;
}

export function isPeftLayer(m: Module): m is LoraLinear | ModulesToSaveWrapper | LoraEmbedding | TrainableTokensWrapper | LoraExperts {
  return m instanceof LoraLinear || m instanceof ModulesToSaveWrapper || m instanceof LoraEmbedding || m instanceof TrainableTokensWrapper || m instanceof LoraExperts;
}

/**
 * Every module of the base model in registration order, root first (path ""). LoRA layers and modules-to-save
 * wrappers are visited but not entered: what is inside them belongs to PEFT, not to the model.
 */
export function* walkModules(root: Module): Generator<ModuleSite> {
  const stack: ModuleSite[] = [{ path: '', module: root, parent: null, name: '' }];
  while (stack.length > 0) {
    const site = stack.pop()!;
    yield site;
    if (isPeftLayer(site.module)) continue;
    const children = site.module.namedChildren();
    for (let i = children.length - 1; i >= 0; i--) {
      const [name, module] = children[i]!;
      stack.push({ path: site.path ? `${site.path}.${name}` : name, module, parent: site.module, name });
    }
  }
}

export function loraLayers(root: Module): { path: string; layer: LoraLinear }[] {
  return [...walkModules(root)].flatMap((s) => (s.module instanceof LoraLinear ? [{ path: s.path, layer: s.module }] : []));
}

export function modulesToSaveWrappers(root: Module): { path: string; wrapper: ModulesToSaveWrapper }[] {
  return [...walkModules(root)].flatMap((s) => (s.module instanceof ModulesToSaveWrapper ? [{ path: s.path, wrapper: s.module }] : []));
}

/**
 * Layers with adapters other than LoraLinear (LoRA on an embedding, trainable tokens, LoRA on expert parameters):
 * merged, unmerged and deleted with the LoRA layers.
 */
export function otherAdapterLayers(root: Module): { path: string; layer: LoraEmbedding | TrainableTokensWrapper | LoraExperts }[] {
  const isOther = (m: Module) => m instanceof LoraEmbedding || m instanceof TrainableTokensWrapper || m instanceof LoraExperts;
  return [...walkModules(root)].flatMap((s) => (isOther(s.module) ? [{ path: s.path, layer: s.module as LoraEmbedding | TrainableTokensWrapper | LoraExperts }] : []));
}
