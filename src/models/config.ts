import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseJsonText } from '../io/json-text.js';
import { SUPPORTED_ACTIVATIONS } from '../ops/elementwise.js';
import { parseRopeSpec, type RopeSpec } from './rope.js';

/** The attention of one decoder layer: over every earlier position, or over the last `slidingWindow` only. */
export type LayerType = 'full_attention' | 'sliding_attention';

/**
 * The dense decoder families, each computing as its transformers 5.17 class does. `llama` covers Llama 2/3,
 * Mistral and Qwen2, which differ only in flags (biases, sliding window).
 */
export type ModelFamily = 'llama' | 'qwen3' | 'gemma2' | 'gemma3' | 'phi3' | 'smollm3' | 'olmo2' | MoeFamily;

/** The mixture-of-experts families (src/models/moe.ts): their attention is a dense family's, their MLPs are experts. */
export type MoeFamily = 'mixtral' | 'qwen3_moe' | 'gpt_oss';

/** The sparse MLP of a mixture-of-experts config (transformers 5.17's MixtralSparseMoeBlock, Qwen3MoeSparseMoeBlock, GptOssMLP). */
export interface MoeConfig {
  readonly family: MoeFamily;
  /** num_local_experts (Qwen3-MoE's released configs say num_experts). */
  readonly numExperts: number;
  /** num_experts_per_tok. */
  readonly topK: number;
  /** Each expert's intermediate width: moe_intermediate_size (Qwen3-MoE) or intermediate_size. */
  readonly expertIntermediateSize: number;
  /** Per layer: a sparse block, or the dense MLP of intermediate_size (Qwen3-MoE's mlp_only_layers and decoder_sparse_step). */
  readonly sparseLayers: readonly boolean[];
  /**
   * 'softmax-topk': softmax over every expert's logit, the top k, renormalised to sum 1 when normTopkProb
   * (Mixtral always, Qwen3-MoE by norm_topk_prob); 'topk-softmax': the top k logits, softmax over them (gpt-oss).
   */
  readonly routing: 'softmax-topk' | 'topk-softmax';
  readonly normTopkProb: boolean;
  /** gpt-oss: router and experts carry biases, gate/up are interleaved and the SwiGLU is clamped at this limit. */
  readonly swigluLimit: number;
  /** How the checkpoint stores the expert weights: float tensors, or gpt-oss's MXFP4 blocks and scales (models/mxfp4.ts). */
  readonly expertFormat: 'float' | 'mxfp4';
}

/** Where a decoder layer normalises: before each sublayer (Llama), before and after (Gemma), after only (OLMo 2). */
export type NormPlacement = 'pre' | 'sandwich' | 'post';

/** The fields of a decoder config.json that the model uses, in camelCase, plus the raw JSON. */
export interface ModelConfig {
  readonly architecture: string;
  readonly modelType: string;
  readonly family: ModelFamily;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly rmsNormEps: number;
  readonly maxPositionEmbeddings: number;
  readonly tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (Qwen2; attention_bias). */
  readonly qkvBias: boolean;
  /** o_proj carries a bias (attention_bias, except Qwen2). */
  readonly oBias: boolean;
  readonly mlpBias: boolean;
  /** hidden_act / hidden_activation: the MLP's gate activation (transformers' ACT2FN name). */
  readonly hiddenAct: string;
  /** One entry per layer. */
  readonly layerTypes: readonly LayerType[];
  /** Positions a sliding_attention layer sees (itself included), or null when no layer slides. */
  readonly slidingWindow: number | null;
  /** RoPE of each layer type (Gemma 3 gives its sliding layers their own base). */
  readonly rope: Readonly<Record<LayerType, RopeSpec>>;
  /** Per layer: whether it rotates q and k at all (SmolLM3's NoPE layers do not). */
  readonly ropeLayers: readonly boolean[];
  /** Leading dimensions of each head that RoPE rotates (partial_rotary_factor * headDim). */
  readonly rotaryDim: number;
  /** RMSNorm of q and k: none, per head before RoPE (Qwen3, Gemma 3), or over the whole projection (OLMo 2). */
  readonly qkNorm: 'none' | 'head' | 'projection';
  readonly normPlacement: NormPlacement;
  /** Gemma's RMSNorm scales by (1 + weight). */
  readonly normPlusOne: boolean;
  /** Gemma multiplies the embeddings by sqrt(hidden_size) (rounded to the model dtype). */
  readonly scaleEmbeddings: boolean;
  /** The attention's score scale: 1/sqrt(head_dim), or Gemma's query_pre_attn_scalar^-1/2. */
  readonly attentionScale: number;
  /**
   * tanh soft-capping of attention scores as computed (Gemma 2), 0 for none. transformers 5.17 applies
   * attn_logit_softcapping only with eager attention; its default (sdpa) drops it, and so does this by default.
   */
  readonly attnLogitSoftcap: number;
  /** attn_logit_softcapping as config.json gives it (0 for null), whether or not the attention applies it. */
  readonly configuredAttnLogitSoftcap: number;
  readonly attnImplementation: AttnImplementation;
  /** tanh soft-capping of the final logits (Gemma 2), 0 for none. */
  readonly finalLogitSoftcap: number;
  /** Phi-3 stores q/k/v as one qkv_proj and gate/up as one gate_up_proj. */
  readonly fusedProjections: boolean;
  /** The mixture-of-experts MLPs, or null for a dense family. */
  readonly moe: MoeConfig | null;
  /** gpt-oss: each attention layer holds one sink logit per query head (self_attn.sinks). */
  readonly attentionSinks: boolean;
  /**
   * Prefix of the decoder's tensors in the checkpoint ("model"; a Gemma 3 multimodal checkpoint keeps its
   * language model under "language_model.model" or "model.language_model"), and the output head's tensor.
   */
  readonly weightPrefix: string;
  readonly lmHeadName: string;
  /** Set when config.json describes a multimodal model whose vision tower is not loaded. */
  readonly skippedTower: string | null;
  /** Dropout probabilities of the base model (attention_dropout, resid_pdrop, embd_pdrop) that are not 0. */
  readonly baseDropout: Readonly<Record<string, number>>;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: number[];
  readonly padTokenId: number | null;
  /** config.json as read (for a multimodal checkpoint: the whole file, not only its text_config). */
  readonly raw: Readonly<Record<string, unknown>>;
}

/** architectures[0] -> family; Gemma3ForConditionalGeneration loads its text model. */
const ARCHITECTURES: Readonly<Record<string, ModelFamily>> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'llama',
  Qwen2ForCausalLM: 'llama',
  Qwen3ForCausalLM: 'qwen3',
  Gemma2ForCausalLM: 'gemma2',
  Gemma3ForCausalLM: 'gemma3',
  Gemma3ForConditionalGeneration: 'gemma3',
  Phi3ForCausalLM: 'phi3',
  SmolLM3ForCausalLM: 'smollm3',
  Olmo2ForCausalLM: 'olmo2',
  MixtralForCausalLM: 'mixtral',
  Qwen3MoeForCausalLM: 'qwen3_moe',
  GptOssForCausalLM: 'gpt_oss',
};

export const SUPPORTED_ARCHITECTURES: readonly string[] = Object.keys(ARCHITECTURES);

/** Values transformers' config classes default to when config.json leaves them out, per model_type. */
const DEFAULTS: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {
  gemma2: {
    vocab_size: 256000, hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26, num_attention_heads: 8,
    num_key_value_heads: 4, head_dim: 256, hidden_activation: 'gelu_pytorch_tanh', max_position_embeddings: 8192,
    rms_norm_eps: 1e-6, rope_theta: 10000, query_pre_attn_scalar: 256, sliding_window: 4096,
    final_logit_softcapping: 30.0, attn_logit_softcapping: 50.0, tie_word_embeddings: true,
  },
  gemma3_text: {
    vocab_size: 262208, hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26, num_attention_heads: 8,
    num_key_value_heads: 4, head_dim: 256, hidden_activation: 'gelu_pytorch_tanh', max_position_embeddings: 131072,
    rms_norm_eps: 1e-6, rope_theta: 1000000, rope_local_base_freq: 10000, query_pre_attn_scalar: 256,
    sliding_window: 4096, sliding_window_pattern: 6, final_logit_softcapping: null, attn_logit_softcapping: null,
    tie_word_embeddings: true,
  },
  smollm3: { tie_word_embeddings: true, no_rope_layer_interval: 4 },
  mixtral: { num_local_experts: 8, num_experts_per_tok: 2, router_jitter_noise: 0, output_router_logits: false, router_aux_loss_coef: 0.001 },
  qwen3_moe: {
    num_experts_per_tok: 8, moe_intermediate_size: 768, norm_topk_prob: false, decoder_sparse_step: 1, mlp_only_layers: [],
    output_router_logits: false, router_aux_loss_coef: 0.001,
  },
  gpt_oss: {
    num_local_experts: 128, num_experts_per_tok: 4, attention_bias: true, sliding_window: 128, swiglu_limit: 7.0,
    output_router_logits: false, router_aux_loss_coef: 0.9, hidden_act: 'silu',
  },
};

/**
 * transformers' attn_implementation: the two differ only where sdpa cannot express a model's attention
 * (Gemma 2's score soft-capping, which eager applies and sdpa, transformers' default, leaves out).
 */
export type AttnImplementation = 'sdpa' | 'eager';

export interface ConfigOptions {
  /** Default 'sdpa', as transformers 5.17 picks when from_pretrained gets no attn_implementation. */
  readonly attnImplementation?: AttnImplementation;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

class Fields {
  constructor(
    readonly raw: Record<string, unknown>,
    readonly path: string,
    readonly defaults: Readonly<Record<string, unknown>>,
  ) {}
  get(key: string): unknown {
    return key in this.raw ? this.raw[key] : this.defaults[key];
  }
  num(key: string, fallback?: number): number {
    const v = this.get(key);
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new ConfigError(`${this.path} has no "${key}"; this architecture's config.json needs it.`);
    }
    throw new ConfigError(`${this.path}: "${key}" must be a finite number, got ${typeof v === 'number' ? v : JSON.stringify(v)}.`);
  }
  positiveInt(key: string, fallback?: number): number {
    const v = this.num(key, fallback);
    if (!Number.isInteger(v) || v <= 0) throw new ConfigError(`${this.path}: "${key}" must be a positive integer, got ${v}.`);
    return v;
  }
  /** A number, or 0 for null/absent (soft-capping, dropout). */
  optionalNum(key: string): number {
    const v = this.get(key);
    return v === null || v === undefined ? 0 : this.num(key);
  }
  bool(key: string, fallback: boolean): boolean {
    const v = this.get(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw new ConfigError(`${this.path}: "${key}" must be true or false, got ${JSON.stringify(v)}.`);
    return v;
  }
  str(key: string, fallback: string): string {
    const v = this.get(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'string') throw new ConfigError(`${this.path}: "${key}" must be a string, got ${JSON.stringify(v)}.`);
    return v;
  }
}



/** The per-layer attention pattern: layer_types when given, else what the family's config class derives. */
function layerTypesOf(f: Fields, family: ModelFamily, layers: number, architecture: string): { types: LayerType[]; window: number | null } {
  const given = f.get('layer_types');
  const windowField = f.get('sliding_window');
  let window = windowField === null || windowField === undefined ? null : f.positiveInt('sliding_window');
  // Qwen2/Qwen3/SmolLM3 slide only with use_sliding_window (the config class then drops sliding_window otherwise).
  const gated = architecture === 'Qwen2ForCausalLM' || family === 'qwen3' || family === 'qwen3_moe' || family === 'smollm3';
  if (gated && !f.bool('use_sliding_window', false)) window = null;
  let types: LayerType[];
  if (Array.isArray(given)) {
    if (given.length !== layers) throw new ConfigError(`${f.path}: "layer_types" lists ${given.length} layers but num_hidden_layers is ${layers}.`);
    types = given.map((t, i) => {
      if (t !== 'full_attention' && t !== 'sliding_attention') {
        throw new ConfigError(`${f.path}: layer_types[${i}] is ${JSON.stringify(t)}; supported layer types are full_attention and sliding_attention.`);
      }
      return t;
    });
    // transformers' Qwen-style configs keep layer_types as written but attend fully when sliding is off.
    if (gated && window === null) types = types.map(() => 'full_attention');
  } else if (family === 'gemma2' || family === 'gpt_oss') {
    types = Array.from({ length: layers }, (_, i) => ((i + 1) % 2 ? 'sliding_attention' : 'full_attention'));
  } else if (family === 'gemma3') {
    const pattern = f.positiveInt('sliding_window_pattern', 6);
    types = Array.from({ length: layers }, (_, i) => ((i + 1) % pattern ? 'sliding_attention' : 'full_attention'));
  } else if (gated) {
    const from = f.get('max_window_layers') === undefined || f.get('max_window_layers') === null ? layers : f.positiveInt('max_window_layers');
    types = Array.from({ length: layers }, (_, i) => (window !== null && i >= from ? 'sliding_attention' : 'full_attention'));
  } else {
    // Mistral and Phi-3 (and Llama, which never sets it) slide every layer when sliding_window is set.
    types = Array.from({ length: layers }, () => (window !== null ? 'sliding_attention' : 'full_attention'));
  }
  if (types.includes('sliding_attention') && window === null) {
    throw new ConfigError(`${f.path}: layer_types has sliding_attention layers but "sliding_window" is not set; give the window size.`);
  }
  return { types, window: types.includes('sliding_attention') ? window : null };
}

/** rope_parameters (transformers 5, per layer type for Gemma 3) or rope_theta + rope_scaling (4.x). */
function ropeOf(f: Fields, family: ModelFamily, rotaryDim: number): Record<LayerType, RopeSpec> {
  const maxPositionEmbeddings = f.positiveInt('max_position_embeddings', 4096);
  const originalMax = f.get('original_max_position_embeddings') === undefined || f.get('original_max_position_embeddings') === null ? undefined : f.positiveInt('original_max_position_embeddings');
  const ctx = (where: string) => ({
    maxPositionEmbeddings,
    ...(typeof originalMax === 'number' ? { originalMaxPositionEmbeddings: originalMax } : {}),
    rotaryDim,
    where,
  });
  const params = f.get('rope_parameters');
  const asObject = (v: unknown, where: string): Record<string, unknown> => {
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(`${f.path}: "${where}" must be an object.`);
    return v as Record<string, unknown>;
  };
  const legacy = (theta: number): Record<string, unknown> => {
    const scaling = f.get('rope_scaling');
    return { rope_theta: theta, ...(scaling ? asObject(scaling, 'rope_scaling') : {}) };
  };
  const parse = (p: Record<string, unknown>, where: string): RopeSpec => {
    try {
      return parseRopeSpec(p, ctx(where));
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
  };
  if (family === 'gemma3') {
    if (params && typeof params === 'object' && 'full_attention' in params) {
      const byType = asObject(params, 'rope_parameters');
      return {
        full_attention: parse(asObject(byType['full_attention'], 'rope_parameters.full_attention'), `${f.path} rope_parameters.full_attention`),
        sliding_attention: parse(asObject(byType['sliding_attention'] ?? byType['full_attention'], 'rope_parameters.sliding_attention'), `${f.path} rope_parameters.sliding_attention`),
      };
    }
    // 4.x Gemma 3: rope_theta (+ rope_scaling) for global layers, rope_local_base_freq for the sliding ones.
    const full = parse(params ? withTopLevelTheta(f, asObject(params, 'rope_parameters'), 1e6) : legacy(f.num('rope_theta', 1e6)), `${f.path} rope_parameters`);
    return { full_attention: full, sliding_attention: parse({ rope_type: 'default', rope_theta: f.num('rope_local_base_freq', 10000) }, `${f.path} rope_local_base_freq`) };
  }
  const p = params ? withTopLevelTheta(f, asObject(params, 'rope_parameters'), 10000) : legacy(f.num('rope_theta', 10000));
  const spec = parse(p, `${f.path} rope_parameters`);
  return { full_attention: spec, sliding_attention: spec };
}

/**
 * rope_parameters with a 4.x top-level rope_theta merged in (the parameters' own rope_theta wins, as transformers'
 * standardize_rope_params). A top-level rope_theta must still be a positive number, and one that contradicts the
 * parameters' is refused: one of the two would be silently ignored.
 */
function withTopLevelTheta(f: Fields, params: Record<string, unknown>, fallback: number): Record<string, unknown> {
  const top = f.raw['rope_theta'];
  if (top === undefined || top === null) return { rope_theta: f.get('rope_theta') ?? fallback, ...params };
  if (typeof top !== 'number' || !Number.isFinite(top) || top <= 0) throw new ConfigError(`${f.path}: "rope_theta" must be a positive number, got ${JSON.stringify(top)}.`);
  const inner = params['rope_theta'];
  if (inner !== undefined && inner !== null && inner !== top) {
    throw new ConfigError(`${f.path}: "rope_theta" is ${top} but rope_parameters.rope_theta is ${JSON.stringify(inner)}; keep one of them so the RoPE base is not ambiguous.`);
  }
  return { rope_theta: top, ...params };
}

/**
 * A token id field: absent or null, an integer, or (eos_token_id) a list of them. Negative ids are kept, as
 * transformers keeps them: some released configs write pad_token_id -1 for "none", and no token matches them.
 */
function tokenIds(f: Fields, key: string, list: boolean): number[] {
  const v = f.get(key);
  if (v === undefined || v === null) return [];
  const ids = list && Array.isArray(v) ? v : [v];
  for (const id of ids) {
    if (typeof id !== 'number' || !Number.isSafeInteger(id)) {
      throw new ConfigError(`${f.path}: "${key}" must be an integer${list ? ' or a list of integers' : ''} (or null), got ${JSON.stringify(v)}.`);
    }
  }
  return ids as number[];
}

/**
 * Fields that change what a family computes but that loraforge does not implement: refused in one sentence
 * rather than ignored.
 */
function refuseUnimplemented(f: Fields, family: ModelFamily): void {
  const refuse = (key: string, why: string) => {
    throw new ConfigError(`${f.path}: "${key}" is ${JSON.stringify(f.get(key))}, ${why}`);
  };
  if (f.get('use_bidirectional_attention') === true) refuse('use_bidirectional_attention', 'but loraforge runs causal language models only; set it to false or null.');
  if ((family === 'olmo2' || family === 'llama') && f.get('clip_qkv') !== undefined && f.get('clip_qkv') !== null) refuse('clip_qkv', 'which loraforge does not implement; remove it or set it to null.');
}

/** Qwen3-MoE: num_experts in released configs, num_local_experts as transformers 5.17 saves it. */
function expertCount(f: Fields, family: MoeFamily): number {
  const local = f.get('num_local_experts');
  const named = family === 'qwen3_moe' ? f.raw['num_experts'] : undefined;
  if (named !== undefined && named !== null && local !== undefined && local !== null && named !== local) {
    throw new ConfigError(`${f.path}: "num_experts" is ${JSON.stringify(named)} but "num_local_experts" is ${JSON.stringify(local)}; keep one of them.`);
  }
  if (named !== undefined && named !== null) return f.positiveInt('num_experts');
  return f.positiveInt('num_local_experts', family === 'qwen3_moe' ? 128 : undefined);
}

/** The experts of a mixture-of-experts family, with every field that changes their math implemented or refused. */
function moeOf(f: Fields, family: MoeFamily, layers: number, hiddenAct: string): MoeConfig {
  const numExperts = expertCount(f, family);
  const topK = f.positiveInt('num_experts_per_tok');
  if (topK > numExperts) throw new ConfigError(`${f.path}: "num_experts_per_tok" is ${topK} but there are only ${numExperts} experts; it must be at most ${numExperts}.`);
  // transformers adds router_aux_loss_coef * load_balancing_loss_func(...) to the loss only when output_router_logits is set.
  if (f.bool('output_router_logits', false) && f.optionalNum('router_aux_loss_coef') !== 0) {
    throw new ConfigError(`${f.path}: "output_router_logits" is true with router_aux_loss_coef ${f.optionalNum('router_aux_loss_coef')}, which adds transformers' load-balancing loss; loraforge does not implement that loss, so set "output_router_logits" to false.`);
  }
  if (family === 'mixtral' && f.optionalNum('router_jitter_noise') !== 0) {
    throw new ConfigError(`${f.path}: "router_jitter_noise" is ${f.optionalNum('router_jitter_noise')}, which scales training inputs by random noise; loraforge does not implement it, so set it to 0.`);
  }
  let sparseLayers = Array.from({ length: layers }, () => true);
  if (family === 'qwen3_moe') {
    const step = f.positiveInt('decoder_sparse_step', 1);
    const only = f.get('mlp_only_layers');
    if (!Array.isArray(only) || only.some((i) => !Number.isInteger(i) || i < 0 || i >= layers)) {
      throw new ConfigError(`${f.path}: "mlp_only_layers" must list layer indices 0 to ${layers - 1}, got ${JSON.stringify(only)}.`);
    }
    sparseLayers = sparseLayers.map((_, i) => !only.includes(i) && (i + 1) % step === 0);
  }
  const swigluLimit = family === 'gpt_oss' ? f.num('swiglu_limit', 7.0) : 0;
  if (family === 'gpt_oss') {
    // transformers' GptOssExperts computes with alpha 1.702 and limit 7.0 whatever the config says.
    if (swigluLimit !== 7.0) throw new ConfigError(`${f.path}: "swiglu_limit" is ${swigluLimit}, but transformers' GptOssExperts always clamps at 7.0; set it to 7.0.`);
    if (hiddenAct !== 'silu') throw new ConfigError(`${f.path}: "hidden_act" is "${hiddenAct}", but gpt-oss's experts always use their clamped SwiGLU; set it to "silu".`);
  }
  const quant = f.raw['quantization_config'] as Record<string, unknown> | undefined;
  const mxfp4 = quant !== undefined && quant !== null && quant['quant_method'] === 'mxfp4';
  if (mxfp4 && family !== 'gpt_oss') throw new ConfigError(`${f.path}: quantization_config.quant_method "mxfp4" is gpt-oss's expert format, but this is a ${family} config; remove the quantization_config or use the checkpoint it came with.`);
  if (mxfp4 && (f.positiveInt('hidden_size') % 32 !== 0 || f.positiveInt('intermediate_size') % 32 !== 0)) {
    throw new ConfigError(`${f.path}: MXFP4 experts come in blocks of 32 values, so hidden_size and intermediate_size must be multiples of 32.`);
  }
  return {
    family,
    numExperts,
    topK,
    expertIntermediateSize: family === 'qwen3_moe' ? f.positiveInt('moe_intermediate_size') : f.positiveInt('intermediate_size'),
    sparseLayers,
    routing: family === 'gpt_oss' ? 'topk-softmax' : 'softmax-topk',
    normTopkProb: family === 'mixtral' ? true : family === 'qwen3_moe' ? f.bool('norm_topk_prob', false) : false,
    swigluLimit,
    expertFormat: mxfp4 ? 'mxfp4' : 'float',
  };
}

const MOE_FAMILIES: readonly ModelFamily[] = ['mixtral', 'qwen3_moe', 'gpt_oss'];

export function parseModelConfig(file: Record<string, unknown>, path = 'config.json', options: ConfigOptions = {}): ModelConfig {
  const archs = file['architectures'];
  const architecture = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : null;
  if (!architecture) throw new ConfigError(`${path} has no "architectures" entry; it must name one of ${SUPPORTED_ARCHITECTURES.join(', ')}.`);
  const family = ARCHITECTURES[architecture];
  if (!family) throw new ConfigError(`${path}: architecture "${architecture}" is not supported; supported architectures are ${SUPPORTED_ARCHITECTURES.join(', ')}.`);
  const multimodal = architecture === 'Gemma3ForConditionalGeneration';
  let raw = file;
  if (multimodal) {
    const text = file['text_config'];
    if (!text || typeof text !== 'object' || Array.isArray(text)) throw new ConfigError(`${path}: a Gemma3ForConditionalGeneration config needs a "text_config" object.`);
    raw = text as Record<string, unknown>;
  }
  const modelType = typeof raw['model_type'] === 'string' ? (raw['model_type'] as string) : multimodal ? 'gemma3_text' : 'llama';
  const f = new Fields(raw, multimodal ? `${path} text_config` : path, DEFAULTS[modelType] ?? {});
  const top = multimodal ? new Fields(file, path, {}) : f;
  refuseUnimplemented(f, family);
  const hiddenSize = f.positiveInt('hidden_size');
  const heads = f.positiveInt('num_attention_heads');
  const kvHeads = f.positiveInt('num_key_value_heads', heads);
  const headDim = f.num('head_dim', hiddenSize / heads);
  if (heads % kvHeads !== 0) throw new ConfigError(`${f.path}: num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}.`);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0 || headDim <= 0) throw new ConfigError(`${f.path}: head_dim ${headDim} must be a positive even integer.`);
  const layers = f.positiveInt('num_hidden_layers');
  const vocab = f.positiveInt('vocab_size');
  const eps = f.num('rms_norm_eps', 1e-6);
  if (!(eps > 0)) throw new ConfigError(`${f.path}: "rms_norm_eps" must be positive, got ${eps}.`);
  const gemma = family === 'gemma2' || family === 'gemma3';
  const hiddenAct = f.str(gemma ? 'hidden_activation' : 'hidden_act', gemma ? 'gelu_pytorch_tanh' : 'silu');
  if (!SUPPORTED_ACTIVATIONS.includes(hiddenAct)) {
    throw new ConfigError(`${f.path}: "${gemma ? 'hidden_activation' : 'hidden_act'}" is "${hiddenAct}", which loraforge does not implement; supported: ${SUPPORTED_ACTIVATIONS.join(', ')}.`);
  }
  const rotaryFactor = f.num('partial_rotary_factor', (f.get('rope_parameters') as Record<string, unknown> | undefined)?.['partial_rotary_factor'] as number | undefined ?? 1);
  if (!(rotaryFactor > 0 && rotaryFactor <= 1)) throw new ConfigError(`${f.path}: "partial_rotary_factor" must be in (0, 1], got ${rotaryFactor}.`);
  const rotaryDim = Math.floor(headDim * rotaryFactor);
  if (rotaryDim % 2 !== 0 || rotaryDim === 0) throw new ConfigError(`${f.path}: partial_rotary_factor ${rotaryFactor} gives ${rotaryDim} rotary dimensions of head_dim ${headDim}; it must give a positive even number.`);
  const { types, window } = layerTypesOf(f, family, layers, architecture);
  let ropeLayers = Array.from({ length: layers }, () => true);
  if (family === 'smollm3') {
    const given = f.get('no_rope_layers');
    if (Array.isArray(given)) {
      if (given.length !== layers || given.some((v) => v !== 0 && v !== 1)) throw new ConfigError(`${f.path}: "no_rope_layers" must list 0 or 1 for each of the ${layers} layers.`);
      ropeLayers = given.map((v) => v === 1);
    } else {
      const interval = f.positiveInt('no_rope_layer_interval', 4);
      ropeLayers = ropeLayers.map((_, i) => (i + 1) % interval !== 0);
    }
  }
  const attentionBias = f.bool('attention_bias', false);
  const isQwen2 = architecture === 'Qwen2ForCausalLM';
  const dropout: Record<string, number> = {};
  for (const key of ['attention_dropout', 'resid_pdrop', 'embd_pdrop']) {
    const p = f.optionalNum(key);
    if (!(p >= 0 && p < 1)) throw new ConfigError(`${f.path}: "${key}" is a dropout probability and must be in [0, 1), got ${p}.`);
    if (p !== 0) dropout[key] = p;
  }
  const queryScalar = gemma ? f.num('query_pre_attn_scalar', headDim) : headDim;
  if (!(queryScalar > 0)) throw new ConfigError(`${f.path}: "query_pre_attn_scalar" must be positive, got ${queryScalar}.`);
  const softcap = (key: string) => {
    const v = gemma ? f.optionalNum(key) : 0;
    if (v < 0) throw new ConfigError(`${f.path}: "${key}" must be positive or null, got ${v}.`);
    return v;
  };
  const tieDefault = family === 'gemma2' || family === 'gemma3' || family === 'smollm3';
  const weightPrefix = multimodal ? 'language_model.model' : 'model';
  const attnImplementation = options.attnImplementation ?? 'sdpa';
  if (attnImplementation !== 'sdpa' && attnImplementation !== 'eager') throw new ConfigError(`attnImplementation "${String(attnImplementation)}" is not supported; use "sdpa" (the default) or "eager".`);
  const attnSoftcap = softcap('attn_logit_softcapping');
  return {
    architecture,
    modelType,
    family,
    hiddenSize,
    intermediateSize: f.positiveInt('intermediate_size'),
    numHiddenLayers: layers,
    numAttentionHeads: heads,
    numKeyValueHeads: kvHeads,
    headDim,
    vocabSize: vocab,
    rmsNormEps: eps,
    maxPositionEmbeddings: f.positiveInt('max_position_embeddings', 4096),
    tieWordEmbeddings: f.bool('tie_word_embeddings', multimodal ? file['tie_word_embeddings'] !== false : tieDefault),
    qkvBias: isQwen2 || attentionBias,
    oBias: !isQwen2 && attentionBias,
    mlpBias: f.bool('mlp_bias', false),
    hiddenAct,
    layerTypes: types,
    slidingWindow: window,
    rope: ropeOf(f, family, rotaryDim),
    ropeLayers,
    rotaryDim,
    qkNorm: family === 'qwen3' || family === 'qwen3_moe' || family === 'gemma3' ? 'head' : family === 'olmo2' ? 'projection' : 'none',
    normPlacement: gemma ? 'sandwich' : family === 'olmo2' ? 'post' : 'pre',
    normPlusOne: gemma,
    scaleEmbeddings: gemma,
    attentionScale: queryScalar ** -0.5,
    attnLogitSoftcap: attnImplementation === 'eager' ? attnSoftcap : 0,
    configuredAttnLogitSoftcap: attnSoftcap,
    attnImplementation,
    finalLogitSoftcap: softcap('final_logit_softcapping'),
    fusedProjections: family === 'phi3',
    moe: MOE_FAMILIES.includes(family) ? moeOf(f, family as MoeFamily, layers, hiddenAct) : null,
    attentionSinks: family === 'gpt_oss',
    weightPrefix,
    lmHeadName: multimodal ? 'language_model.lm_head.weight' : 'lm_head.weight',
    skippedTower: multimodal ? 'vision_tower' : null,
    baseDropout: dropout,
    bosTokenId: tokenIds(f, 'bos_token_id', false)[0] ?? tokenIds(top, 'bos_token_id', false)[0] ?? null,
    eosTokenIds: f.get('eos_token_id') !== undefined && f.get('eos_token_id') !== null ? tokenIds(f, 'eos_token_id', true) : tokenIds(top, 'eos_token_id', true),
    padTokenId: tokenIds(f, 'pad_token_id', false)[0] ?? null,
    raw: file,
  };
}

export async function readJsonObject(path: string, what: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new ConfigError(`${path} does not exist; ${what}.`);
    throw e;
  }
  const parsed = parseJsonText(text, path, 'fix or re-download the file');
  if ('problem' in parsed) throw new ConfigError(parsed.problem);
  const { value } = parsed;
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${path} must hold a JSON object.`);
  return value as Record<string, unknown>;
}

export async function loadConfig(dir: string, options: ConfigOptions = {}): Promise<ModelConfig> {
  const path = join(dir, 'config.json');
  const raw = await readJsonObject(path, `a model folder needs config.json (is "${dir}" the right folder?)`);
  return parseModelConfig(raw, path, options);
}
