import type { TensorSource } from '../io/tensor-source.js';
import type { StoredWeightCheck } from './checkpoint-check.js';
import { Embedding, Linear, RMSNorm } from '../nn/layers.js';
import { ModuleList, type LinearLike } from '../nn/module.js';
import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { ConfigError, type AttnImplementation, type ModelConfig } from './config.js';
import {
  CausalLM,
  DecoderAttention,
  DecoderLayer,
  DecoderMLP,
  DecoderModel,
  LAYER_NORM_NAMES,
  type AttentionProjections,
  type FeedForward,
  type LayerNorms,
  type MlpProjections,
} from './causal-lm.js';
import { decoderPrefix, layerProjections, qkNormWidths, type LayerProjection } from './layout.js';
import { loadSparseMoeBlock } from './moe-weights.js';
import { loadTensor } from './weights.js';

export interface FromPretrainedOptions {
  /** Floating dtype of the weights and activations; 'auto' uses config.json's dtype (float32 when absent). */
  dtype?: DType | 'auto';
  /** 'cpu' (default) or 'cuda'. */
  device?: string;
  /** transformers' attn_implementation: 'sdpa' (default) or 'eager', which alone applies Gemma 2's attention soft-capping. */
  attnImplementation?: AttnImplementation;
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
  readonly config: ModelConfig;
}
export type LinearLoader = (ctx: LinearLoadContext) => Promise<LinearLike>;

/** A quantized checkpoint format by quantization_config.quant_method, registered by quant/. */
interface QuantizedFormat {
  readonly make: (quantConfig: Record<string, unknown>, path: string) => LinearLoader;
  readonly check: StoredWeightCheck;
}
const quantizedFormats = new Map<string, QuantizedFormat>();
/** `make` builds the projection loader from config.json's quantization_config; `check` vets each stored weight first. */
export function registerQuantizedLinearLoader(method: string, make: QuantizedFormat['make'], check: StoredWeightCheck): void {
  quantizedFormats.set(method, { make, check });
}

const denseLinear: LinearLoader = async (c) => {
  const weight = await loadTensor(c.source, `${c.prefix}.weight`, c.dtype, c.device, [c.outFeatures, c.inFeatures]);
  const bias = c.bias ? await loadTensor(c.source, `${c.prefix}.bias`, c.dtype, c.device, [c.outFeatures]) : null;
  return new Linear(weight, bias);
};

export function configDType(config: ModelConfig): DType {
  const d = config.raw['dtype'] ?? config.raw['torch_dtype'];
  return d === 'bfloat16' || d === 'float16' ? d : 'float32';
}

/** Loads one non-projection tensor (embedding, norm, output head) by checkpoint name, checked against `shape`. */
export type WeightLoader = (name: string, shape: readonly number[], kind: 'embedding' | 'norm' | 'head') => Promise<Tensor>;

/** How this checkpoint's projections are stored and loaded: dense, or the registered quantized format config.json names. */
export interface ProjectionFormat {
  readonly load: LinearLoader;
  /** For a quantized checkpoint: the check of a projection weight stored in that format. */
  readonly quantized?: StoredWeightCheck;
}

/** Picks the projection format: dense, or the registered quantized one named by config.json (`dir`'s). */
export function projectionFormatFor(config: ModelConfig, dir: string): ProjectionFormat {
  const q = config.raw['quantization_config'] as Record<string, unknown> | undefined;
  // gpt-oss's MXFP4 quantizes the experts alone (the sparse blocks' loader decodes them); its projections are dense.
  if (!q || config.moe?.expertFormat === 'mxfp4') return { load: denseLinear };
  const method = String(q['quant_method'] ?? '');
  const format = quantizedFormats.get(method);
  if (!format) throw new ConfigError(`${dir}/config.json: quantization method "${method}" is not supported; supported: ${[...quantizedFormats.keys()].join(', ') || 'none'}.`);
  return { load: format.make(q, `${dir}/config.json`), quantized: format.check };
}

/** Builds a decoder model from config + tensors (used by fromPretrained and by the quantizer/tests). */
export async function buildCausalLM(
  config: ModelConfig,
  source: TensorSource,
  dtype: DType,
  device: string,
  loadLinear: LinearLoader = denseLinear,
  loadWeight: WeightLoader = (name, shape) => loadTensor(source, name, dtype, device, shape),
): Promise<CausalLM> {
  const c = config;
  // Before any weight reaches the device: the CUDA kernels would refuse the first attention call instead.
  if (c.attentionSinks && device.startsWith('cuda')) {
    throw new ConfigError(`${c.architecture} uses attention sinks, which the CUDA attention kernels do not implement; load this model with device "cpu".`);
  }
  const { prefix: root, lmHead: lmHeadName } = decoderPrefix(c, source);
  const proj = (p: LayerProjection, layer: string) =>
    loadLinear({ source, prefix: `${layer}.${p.path}`, inFeatures: p.inFeatures, outFeatures: p.outFeatures, bias: p.bias, dtype, device, config: c });
  const norm = async (name: string, width = c.hiddenSize) => new RMSNorm(await loadWeight(`${name}.weight`, [width], 'norm'), c.rmsNormEps, c.normPlusOne);
  const embed = new Embedding(await loadWeight(`${root}.embed_tokens.weight`, [c.vocabSize, c.hiddenSize], 'embedding'));
  const qk = qkNormWidths(c);
  const layers: DecoderLayer[] = [];
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const p = `${root}.layers.${i}`;
    const linears = new Map<string, LinearLike>();
    for (const projection of layerProjections(c, i)) linears.set(projection.path, await proj(projection, p));
    const get = (path: string) => linears.get(path)!;
    const attnProjections: AttentionProjections = c.fusedProjections
      ? { qkv: get('self_attn.qkv_proj'), o: get('self_attn.o_proj') }
      : { q: get('self_attn.q_proj'), k: get('self_attn.k_proj'), v: get('self_attn.v_proj'), o: get('self_attn.o_proj') };
    const qkNorms = qk ? { q: await norm(`${p}.self_attn.q_norm`, qk.q), k: await norm(`${p}.self_attn.k_norm`, qk.k) } : null;
    const sinks = c.attentionSinks ? await loadTensor(source, `${p}.self_attn.sinks`, dtype, device, [c.numAttentionHeads]) : null;
    const attn = new DecoderAttention(c, i, attnProjections, qkNorms, sinks);
    let mlp: FeedForward;
    if (c.moe?.sparseLayers[i]) {
      mlp = await loadSparseMoeBlock(c, source, p, dtype, device);
    } else {
      const mlpProjections: MlpProjections = c.fusedProjections
        ? { gateUp: get('mlp.gate_up_proj'), down: get('mlp.down_proj') }
        : { gate: get('mlp.gate_proj'), up: get('mlp.up_proj'), down: get('mlp.down_proj') };
      mlp = new DecoderMLP(mlpProjections, c.hiddenAct);
    }
    const norms: Partial<Record<keyof LayerNorms, RMSNorm>> = {};
    for (const n of LAYER_NORM_NAMES[c.normPlacement]) norms[n] = await norm(`${p}.${n}`);
    layers.push(new DecoderLayer(attn, mlp, norms as LayerNorms));
  }
  const finalNorm = await norm(`${root}.norm`);
  const lmHead = c.tieWordEmbeddings ? null : new Linear(await loadWeight(lmHeadName, [c.vocabSize, c.hiddenSize], 'head'));
  const model = new DecoderModel(embed, new ModuleList(layers), finalNorm);
  const lm = new CausalLM(c, model, lmHead, dtype, device);
  lm.requiresGrad_(false);
  return lm;
}
