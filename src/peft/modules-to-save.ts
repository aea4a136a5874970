import { Embedding, Linear, RMSNorm } from '../nn/layers.js';
import { Module, type ForwardContext, type LinearLike } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import { AdapterDict } from './adapter-dict.js';
import { PeftError } from './errors.js';
import { mapRowsByAdapter } from './row-groups.js';
import type { LoraRuntimeState } from './runtime-state.js';
import { cloneTensor } from './tensor-copy.js';

/** The layers a modules_to_save entry may name: each maps one tensor to one tensor. */
export type CopyableLayer = Linear | Embedding | RMSNorm;

export function isCopyableLayer(m: Module): m is CopyableLayer {
  return m instanceof Linear || m instanceof Embedding || m instanceof RMSNorm;
}

function copyLayer(m: CopyableLayer): CopyableLayer {
  if (m instanceof Linear) return new Linear(cloneTensor(m.weight), m.bias ? cloneTensor(m.bias) : null);
  if (m instanceof Embedding) return new Embedding(cloneTensor(m.weight));
  return new RMSNorm(cloneTensor(m.weight), m.eps, m.plusOne);
}

/**
 * PEFT's ModulesToSaveWrapper: the original layer plus one fully trainable copy per adapter, saved with the adapter.
 * Children: original_module and modules_to_save.<adapter>, so the copy's parameters are named as PEFT names them.
 * It stands in for a Linear (lm_head), an Embedding or an RMSNorm: forward and weight delegate to the copy in use.
 */
export class ModulesToSaveWrapper extends Module implements LinearLike {
  readonly original_module: CopyableLayer;
  readonly modules_to_save = new AdapterDict<CopyableLayer>();

  constructor(
    original: CopyableLayer,
    readonly path: string,
    private readonly state: LoraRuntimeState,
  ) {
    super();
    this.original_module = this.registerModule('original_module', original);
    this.registerModule('modules_to_save', this.modules_to_save);
  }

  addAdapter(name: string): void {
    this.modules_to_save.set(name, copyLayer(this.original_module));
  }

  deleteAdapter(name: string): void {
    const copy = this.modules_to_save.get(name);
    if (!copy) return;
    for (const [, t] of copy.namedParameters()) t.dispose();
    this.modules_to_save.delete(name);
  }

  hasAdapter(name: string): boolean {
    return this.modules_to_save.has(name);
  }

  /** The layer forward uses now: the first active adapter's copy, else the original. */
  layerInUse(): CopyableLayer {
    if (this.state.adaptersDisabled) return this.original_module;
    for (const name of this.state.activeAdapters) {
      const copy = this.modules_to_save.get(name);
      if (copy) return copy;
    }
    return this.original_module;
  }

  get weight(): Tensor {
    return this.layerInUse().weight;
  }

  get inFeatures(): number {
    return this.linearOriginal().inFeatures;
  }
  get outFeatures(): number {
    return this.linearOriginal().outFeatures;
  }

  forward(x: Tensor, ctx?: ForwardContext): Tensor {
    const rows = ctx?.rowAdapters;
    if (!rows || this.state.adaptersDisabled) return this.layerInUse().forward(x);
    if (rows.length !== x.shape[0]) {
      throw new PeftError(`${rows.length} adapter names were given for a batch of ${x.shape[0]} rows; pass one name per row.`);
    }
    return mapRowsByAdapter(rows, x, (name, xs) => (this.modules_to_save.get(name) ?? this.original_module).forward(xs));
  }

  private linearOriginal(): Linear {
    if (this.original_module instanceof Linear) return this.original_module;
    throw new PeftError(`${this.path} is a ${this.original_module.constructor.name}, not a linear layer.`);
  }
}
