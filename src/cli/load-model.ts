import { AutoModelForCausalLM } from '../models/auto.js';
import type { CausalLM } from '../models/causal-lm.js';
import { loadIn4bit } from '../quant/index.js';
import type { DType } from '../tensor/dtype.js';

export interface BaseModelOptions {
  /** Model folder or Hub id. */
  model: string;
  dtype: DType | 'auto';
  device: string;
  /** Quantize the decoder projections to NF4 on load (QLoRA); the quant layer does the work. */
  qlora: boolean;
}

/** The base model a command works on: dense as stored, or with 4-bit NF4 projections for QLoRA. */
export async function loadBaseModel(o: BaseModelOptions): Promise<CausalLM> {
  if (o.qlora) return loadIn4bit(o.model, { dtype: o.dtype, device: o.device });
  return AutoModelForCausalLM.fromPretrained(o.model, { dtype: o.dtype, device: o.device });
}
