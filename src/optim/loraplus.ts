import type { Tensor } from '../tensor/tensor.js';
import type { AdamWParamGroup } from './adamw.js';

export interface LoraPlusOptions {
  /** The optimizer's learning rate (PEFT's ηA). */
  lr: number;
  /** ηB / ηA: lora_B matrices and one-dimensional parameters step at lr * ratio. */
  loraplusLrRatio: number;
  /** The rate of LoRA tensors on embedding layers (lora_embedding_A/B); default 1e-6, as PEFT. */
  loraplusLrEmbedding?: number;
  /** Weight decay of every group but groupB_no_decay; default 0, as PEFT's loraplus_weight_decay. */
  loraplusWeightDecay?: number;
}

/**
 * PEFT's create_loraplus_optimizer parameter groups (LoRA+, arXiv 2402.12354), over parameters named as
 * adapter_model.safetensors names them: groupA (lr), embedding (loraplusLrEmbedding), groupB (lora_B and 1-D
 * parameters without "bias" in the name: lr * ratio), groupB_no_decay (those with "bias": lr * ratio, no decay).
 * Empty groups are left out.
 */
export function loraplusParamGroups(params: ReadonlyMap<string, Tensor>, options: LoraPlusOptions): AdamWParamGroup[] {
  const { lr, loraplusLrRatio: ratio } = options;
  if (!(Number.isFinite(ratio) && ratio > 0)) throw new Error(`loraplus_lr_ratio must be a positive number, got ${ratio}.`);
  const embeddingLr = options.loraplusLrEmbedding ?? 1e-6;
  const decay = options.loraplusWeightDecay ?? 0;
  const groupA: string[] = [];
  const embedding: string[] = [];
  const groupB: string[] = [];
  const groupBNoDecay: string[] = [];
  for (const [name, p] of params) {
    if (/(^|\.)lora_embedding_[AB](\.|$)/.test(name)) embedding.push(name);
    else if (name.includes('lora_B') || p.shape.length === 1) (name.includes('bias') ? groupBNoDecay : groupB).push(name);
    else groupA.push(name);
  }
  const groups: AdamWParamGroup[] = [
    { names: groupA, lr, weightDecay: decay },
    { names: embedding, lr: embeddingLr, weightDecay: decay },
    { names: groupB, lr: lr * ratio, weightDecay: decay },
    { names: groupBNoDecay, lr: lr * ratio, weightDecay: 0 },
  ];
  return groups.filter((g) => g.names.length > 0);
}
