import type { TensorSource } from '../io/tensor-source.js';
import { Linear, Embedding, RMSNorm } from '../nn/layers.js';
import { ModuleList, type LinearLike } from '../nn/module.js';
import type { DType } from '../tensor/dtype.js';
import { ConfigError, type LlamaConfig } from './config.js';
import { LlamaAttention, LlamaDecoderLayer, LlamaForCausalLM, LlamaMLP, LlamaModel } from './llama.js';
import { loadTensor } from './weights.js';

export interface FromPretrainedOptions {
  /** Floating dtype of the weights and activations; 'auto' uses config.json's dtype (float32 when absent). */
  dtype?: DType | 'auto';
  /** 'cpu' (default) or 'cuda'. */
  device?: string;
  revision?: string;
  token?: string;
  cacheDir?: string;
}

/** What a projection loader needs to build one Linear-like layer from a checkpoint. */
export interface LinearLoadContext {
  readonly source: TensorSource;
  /** Module path, e.g. "model.layers.0.self_attn.q_proj". */
  readonly prefix: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly bias: boolean;
  readonly dtype: DType;
  readonly device: string;
  readonly config: LlamaConfig;
}
export type LinearLoader = (ctx: LinearLoadContext) => Promise<LinearLike>;

/** Loaders for quantized checkpoints by quantization_config.quant_method, registered by quant/. */
const quantizedLoaders = new Map<string, (quantConfig: Record<string, unknown>, path: string) => LinearLoader>();
export function registerQuantizedLinearLoader(method: string, make: (quantConfig: Record<string, unknown>, path: string) => LinearLoader): void {
  quantizedLoaders.set(method, make);
}

const denseLinear: LinearLoader = async (c) => {
  const weight = await loadTensor(c.source, `${c.prefix}.weight`, c.dtype, c.device, [c.outFeatures, c.inFeatures]);
  const bias = c.bias ? await loadTensor(c.source, `${c.prefix}.bias`, c.dtype, c.device, [c.outFeatures]) : null;
  return new Linear(weight, bias);
};

export function configDType(config: LlamaConfig): DType {
  const d = config.raw['dtype'] ?? config.raw['torch_dtype'];
  return d === 'bfloat16' || d === 'float16' ? d : 'float32';
}

/** Picks the projection loader: dense, or the registered quantized loader named by config.json. */
export function linearLoaderFor(config: LlamaConfig, dir: string): LinearLoader {
  const q = config.raw['quantization_config'] as Record<string, unknown> | undefined;
  if (!q) return denseLinear;
  const method = String(q['quant_method'] ?? '');
  const make = quantizedLoaders.get(method);
  if (!make) throw new ConfigError(`${dir}/config.json: quantization method "${method}" is not supported; supported: ${[...quantizedLoaders.keys()].join(', ') || 'none'}.`);
  return make(q, `${dir}/config.json`);
}

/** Builds a Llama-family model from config + tensors (used by fromPretrained and by the quantizer/tests). */
export async function buildLlama(config: LlamaConfig, source: TensorSource, dtype: DType, device: string, loadLinear: LinearLoader = denseLinear): Promise<LlamaForCausalLM> {
  const c = config;
  const proj = (prefix: string, inF: number, outF: number, bias: boolean) =>
    loadLinear({ source, prefix, inFeatures: inF, outFeatures: outF, bias, dtype, device, config: c });
  const norm = async (name: string) => new RMSNorm(await loadTensor(source, name, dtype, device, [c.hiddenSize]), c.rmsNormEps);
  const embed = new Embedding(await loadTensor(source, 'model.embed_tokens.weight', dtype, device, [c.vocabSize, c.hiddenSize]));
  const layers: LlamaDecoderLayer[] = [];
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    const qOut = c.numAttentionHeads * c.headDim;
    const kvOut = c.numKeyValueHeads * c.headDim;
    const attn = new LlamaAttention(c, i, {
      q: await proj(`${p}.self_attn.q_proj`, c.hiddenSize, qOut, c.qkvBias),
      k: await proj(`${p}.self_attn.k_proj`, c.hiddenSize, kvOut, c.qkvBias),
      v: await proj(`${p}.self_attn.v_proj`, c.hiddenSize, kvOut, c.qkvBias),
      o: await proj(`${p}.self_attn.o_proj`, qOut, c.hiddenSize, c.oBias),
    });
    const mlp = new LlamaMLP({
      gate: await proj(`${p}.mlp.gate_proj`, c.hiddenSize, c.intermediateSize, c.mlpBias),
      up: await proj(`${p}.mlp.up_proj`, c.hiddenSize, c.intermediateSize, c.mlpBias),
      down: await proj(`${p}.mlp.down_proj`, c.intermediateSize, c.hiddenSize, c.mlpBias),
    });
    layers.push(new LlamaDecoderLayer(attn, mlp, await norm(`${p}.input_layernorm.weight`), await norm(`${p}.post_attention_layernorm.weight`)));
  }
  const finalNorm = await norm('model.norm.weight');
  const tied = c.tieWordEmbeddings || !source.has('lm_head.weight');
  const lmHead = tied ? null : new Linear(await loadTensor(source, 'lm_head.weight', dtype, device, [c.vocabSize, c.hiddenSize]));
  const model = new LlamaModel(embed, new ModuleList(layers), finalNorm);
  const lm = new LlamaForCausalLM(c, model, lmHead, dtype, device);
  lm.requiresGrad_(false);
  return lm;
}

