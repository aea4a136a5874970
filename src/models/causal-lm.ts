/**
 * The dense decoder families in one file, each a set of flags over one block structure (as transformers 5.17
 * computes them):
 * - Llama 2/3, Mistral, Qwen2, SmolLM: pre-norm, SwiGLU, RoPE; Qwen2's q/k/v bias; Mistral's and Qwen2's
 *   sliding window.
 * - Qwen3: RMSNorm of each q and k head before RoPE. OLMo 2: RMSNorm of the whole q and k projections, norms
 *   after each sublayer instead of before.
 * - Gemma 2/3: (1 + w) RMSNorm before and after each sublayer, embeddings times sqrt(hidden), GeGLU,
 *   query_pre_attn_scalar, alternating sliding/full layers; Gemma 2's tanh soft-capping of attention scores and
 *   final logits; Gemma 3's q/k norm and a RoPE base per layer type.
 * - Phi-3/Phi-4: fused qkv_proj and gate_up_proj, partial rotary embeddings, longrope.
 * - SmolLM3: NoPE layers (no rotation at all).
 * - Mixtral, Qwen3-MoE, gpt-oss: these layers with a sparse mixture-of-experts MLP (moe.ts); gpt-oss's attention
 *   has biases on every projection and a sink logit per head.
 * Parameter names match transformers', so PEFT adapter keys line up.
 */
import {
  add,
  attention,
  crossEntropy,
  div,
  fromHost,
  full,
  gatedActivation,
  linear,
  linearCrossEntropy,
  mulScalar,
  narrow,
  pagedAttention,
  pagedKvWrite,
  reshape,
  rope,
  tanh,
  tensor,
  transpose,
  type AttentionExtras,
  type PagedKvStep,
} from '../ops/index.js';
import { Embedding, Linear, RMSNorm } from '../nn/layers.js';
import { forwardSharedInput, Module, ModuleList, type ForwardContext, type LinearLike } from '../nn/module.js';
import { roundToDType, type DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import type { LayerType, ModelConfig } from './config.js';
import { KvCache, KvPool, pagedKvStep, type KvPoolOptions, type KvPrefix } from './kv-cache.js';
import { ropeFrequencies, ropeTables } from './rope.js';

/** cos/sin tables [T, rotaryDim] (or [B, T, rotaryDim] per row) of one layer type. */
interface RopeTables {
  cos: Tensor;
  sin: Tensor;
}

/** Per-call inputs of the decoder stack, built once by CausalLM.run and shared by every layer. */
interface LayerInputs {
  /** RoPE tables per layer type; null where no layer rotates. */
  rope: Readonly<Record<LayerType, RopeTables>> | null;
  /** Additive key-padding mask [B, S] (0 or -inf), or null. */
  mask: Tensor | null;
  /** The paged KV cache when decoding incrementally: one cache per batch row, all in `pool`. */
  kv: { pool: KvPool; step: PagedKvStep; fresh: boolean } | null;
  /** Packed rows: per row, the lengths of its sequences covering all T positions (AttentionExtras.segments), or null. */
  segments: number[][] | null;
  ctx: ForwardContext;
}

/** The projections of one attention block: separate q/k/v, or Phi-3's fused qkv_proj. */
export type AttentionProjections = { q: LinearLike; k: LinearLike; v: LinearLike; o: LinearLike } | { qkv: LinearLike; o: LinearLike };

export class DecoderAttention extends Module {
  q_proj: LinearLike | null = null;
  k_proj: LinearLike | null = null;
  v_proj: LinearLike | null = null;
  qkv_proj: LinearLike | null = null;
  o_proj: LinearLike;
  q_norm: RMSNorm | null = null;
  k_norm: RMSNorm | null = null;
  /** gpt-oss: one sink logit per query head (AttentionExtras.sinks), or null. */
  sinks: Tensor | null;
  readonly layerType: LayerType;
  private readonly extras: AttentionExtras;

  constructor(
    readonly config: ModelConfig,
    readonly layerIndex: number,
    projections: AttentionProjections,
    norms: { q: RMSNorm; k: RMSNorm } | null = null,
    sinks: Tensor | null = null,
  ) {
    super();
    if ('qkv' in projections) {
      // transformers' Phi3Attention registers o_proj before qkv_proj.
      this.o_proj = this.registerModule('o_proj', projections.o);
      this.qkv_proj = this.registerModule('qkv_proj', projections.qkv);
    } else {
      this.q_proj = this.registerModule('q_proj', projections.q);
      this.k_proj = this.registerModule('k_proj', projections.k);
      this.v_proj = this.registerModule('v_proj', projections.v);
      this.o_proj = this.registerModule('o_proj', projections.o);
    }
    if (norms) {
      this.q_norm = this.registerModule('q_norm', norms.q);
      this.k_norm = this.registerModule('k_norm', norms.k);
    }
    this.sinks = sinks;
    if (sinks) this.registerParameter('sinks', sinks);
    this.layerType = config.layerTypes[layerIndex]!;
    this.extras = {
      window: this.layerType === 'sliding_attention' ? config.slidingWindow! : 0,
      softcap: config.attnLogitSoftcap,
    };
  }

  private project(x: Tensor, ctx: ForwardContext): [Tensor, Tensor, Tensor] {
    const { numAttentionHeads: H, numKeyValueHeads: Hkv, headDim: D } = this.config;
    if (this.qkv_proj) {
      const qkv = this.qkv_proj.forward(x, ctx);
      return [narrow(qkv, 2, 0, H * D), narrow(qkv, 2, H * D, Hkv * D), narrow(qkv, 2, (H + Hkv) * D, Hkv * D)];
    }
    return forwardSharedInput([this.q_proj!, this.k_proj!, this.v_proj!], x, ctx) as [Tensor, Tensor, Tensor];
  }

  forward(x: Tensor, inp: LayerInputs): Tensor {
    const [B, T] = x.shape as [number, number];
    const c = this.config;
    const { numAttentionHeads: H, numKeyValueHeads: Hkv, headDim: D } = c;
    let [qp, kp, vp] = this.project(x, inp.ctx);
    if (c.qkNorm === 'projection') {
      qp = this.q_norm!.forward(qp);
      kp = this.k_norm!.forward(kp);
    }
    // Projections are [B, T, heads, D]; norms and RoPE run in that layout, attention reads [B, heads, T, D].
    let q = reshape(qp, [B, T, H, D]);
    let k = reshape(kp, [B, T, Hkv, D]);
    if (c.qkNorm === 'head') {
      q = this.q_norm!.forward(q);
      k = this.k_norm!.forward(k);
    }
    const tables = c.ropeLayers[this.layerIndex] ? inp.rope?.[this.layerType] : undefined;
    if (tables) {
      q = rope(q, tables.cos, tables.sin);
      k = rope(k, tables.cos, tables.sin);
    }
    const v = reshape(vp, [B, T, Hkv, D]);
    const qh = transpose(q, 1, 2);
    const kh = transpose(k, 1, 2);
    const vh = transpose(v, 1, 2);
    const scale = c.attentionScale;
    const extras: AttentionExtras = this.sinks ? { ...this.extras, sinks: this.sinks } : this.extras;
    let out: Tensor;
    if (inp.kv) {
      const { pool, step, fresh } = inp.kv;
      const kPool = pool.keys[this.layerIndex]!;
      const vPool = pool.values[this.layerIndex]!;
      pagedKvWrite(kPool, vPool, kh, vh, step);
      // A prefill (every cache empty) attends over its own keys with the dense kernel; later steps read the pages.
      out = fresh ? attention(qh, kh, vh, scale, null, true, extras) : pagedAttention(qh, kPool, vPool, step, scale, extras);
    } else {
      out = attention(qh, kh, vh, scale, inp.mask, true, inp.segments ? { ...extras, segments: inp.segments } : extras);
    }
    return this.o_proj.forward(reshape(transpose(out, 1, 2), [B, T, H * D]), inp.ctx);
  }
}

/** The projections of one MLP: separate gate/up, or Phi-3's fused gate_up_proj (gate first, then up). */
export type MlpProjections = { gate: LinearLike; up: LinearLike; down: LinearLike } | { gateUp: LinearLike; down: LinearLike };

export class DecoderMLP extends Module {
  gate_proj: LinearLike | null = null;
  up_proj: LinearLike | null = null;
  gate_up_proj: LinearLike | null = null;
  down_proj: LinearLike;
  constructor(
    projections: MlpProjections,
    readonly act: string,
  ) {
    super();
    if ('gateUp' in projections) {
      this.gate_up_proj = this.registerModule('gate_up_proj', projections.gateUp);
    } else {
      this.gate_proj = this.registerModule('gate_proj', projections.gate);
      this.up_proj = this.registerModule('up_proj', projections.up);
    }
    this.down_proj = this.registerModule('down_proj', projections.down);
  }
  forward(x: Tensor, ctx: ForwardContext): Tensor {
    let gate: Tensor;
    let up: Tensor;
    if (this.gate_up_proj) {
      const both = this.gate_up_proj.forward(x, ctx);
      const I = this.gate_up_proj.outFeatures / 2;
      gate = narrow(both, both.rank - 1, 0, I);
      up = narrow(both, both.rank - 1, I, I);
    } else {
      [gate, up] = forwardSharedInput([this.gate_proj!, this.up_proj!], x, ctx) as [Tensor, Tensor];
    }
    return this.down_proj.forward(gatedActivation(this.act, gate, up), ctx);
  }
}

/** A layer's MLP: the dense DecoderMLP or a sparse mixture-of-experts block (moe.ts). */
export interface FeedForward extends Module {
  forward(x: Tensor, ctx: ForwardContext): Tensor;
}

/** A layer's norms by placement: pre (input, post_attention), sandwich (+ pre/post_feedforward), post (post_attention, post_feedforward). */
export interface LayerNorms {
  input_layernorm?: RMSNorm;
  post_attention_layernorm: RMSNorm;
  pre_feedforward_layernorm?: RMSNorm;
  post_feedforward_layernorm?: RMSNorm;
}

/** The norm names each placement registers, in transformers' order. */
export const LAYER_NORM_NAMES: Readonly<Record<ModelConfig['normPlacement'], readonly (keyof LayerNorms)[]>> = {
  pre: ['input_layernorm', 'post_attention_layernorm'],
  sandwich: ['input_layernorm', 'post_attention_layernorm', 'pre_feedforward_layernorm', 'post_feedforward_layernorm'],
  post: ['post_attention_layernorm', 'post_feedforward_layernorm'],
};

export class DecoderLayer extends Module {
  readonly input_layernorm: RMSNorm | null;
  readonly post_attention_layernorm: RMSNorm;
  readonly pre_feedforward_layernorm: RMSNorm | null;
  readonly post_feedforward_layernorm: RMSNorm | null;
  constructor(
    readonly self_attn: DecoderAttention,
    readonly mlp: FeedForward,
    norms: LayerNorms,
  ) {
    super();
    this.registerModule('self_attn', self_attn);
    this.registerModule('mlp', mlp);
    for (const name of Object.keys(norms) as (keyof LayerNorms)[]) this.registerModule(name, norms[name]!);
    this.input_layernorm = norms.input_layernorm ?? null;
    this.post_attention_layernorm = norms.post_attention_layernorm;
    this.pre_feedforward_layernorm = norms.pre_feedforward_layernorm ?? null;
    this.post_feedforward_layernorm = norms.post_feedforward_layernorm ?? null;
  }
  forward(x: Tensor, inp: LayerInputs): Tensor {
    switch (this.self_attn.config.normPlacement) {
      case 'pre': {
        const h = add(x, this.self_attn.forward(this.input_layernorm!.forward(x), inp));
        return add(h, this.mlp.forward(this.post_attention_layernorm.forward(h), inp.ctx));
      }
      case 'sandwich': {
        const h = add(x, this.post_attention_layernorm.forward(this.self_attn.forward(this.input_layernorm!.forward(x), inp)));
        return add(h, this.post_feedforward_layernorm!.forward(this.mlp.forward(this.pre_feedforward_layernorm!.forward(h), inp.ctx)));
      }
      case 'post': {
        const h = add(x, this.post_attention_layernorm.forward(this.self_attn.forward(x, inp)));
        return add(h, this.post_feedforward_layernorm!.forward(this.mlp.forward(h, inp.ctx)));
      }
    }
  }
}

export class DecoderModel extends Module {
  constructor(
    readonly embed_tokens: Embedding,
    readonly layers: ModuleList<DecoderLayer>,
    readonly norm: RMSNorm,
  ) {
    super();
    this.registerModule('embed_tokens', embed_tokens);
    this.registerModule('layers', layers);
    this.registerModule('norm', norm);
  }
}

/** transformers' Gemma3Model: the text decoder under `language_model` (the vision tower is not loaded). */
class MultimodalHolder extends Module {
  constructor(languageModel: DecoderModel) {
    super();
    this.registerModule('language_model', languageModel);
  }
}

/** What run() takes: token ids as a tensor or nested arrays, and everything optional. */
export interface CausalLMInput {
  inputIds: number[][] | Tensor;
  /** Same shape as inputIds; -100 marks positions without a target. Shifted internally as transformers does. */
  labels?: number[][] | Tensor;
  /** 1 for real tokens, 0 for padding (left or right), per row. */
  attentionMask?: number[][];
  /**
   * Packed rows: per row, the lengths of the examples it holds, in order, summing to at most T (positions after
   * them are padding, which attentionMask hides). Each example then runs as if alone: its positions restart at 0
   * (RoPE, with the frequencies of its own length), its tokens attend only to its own earlier tokens (a sliding
   * window counts within it), and its last token has no target (the next example's first token is not its label).
   */
  segmentLengths?: readonly (readonly number[])[];
  /** Per-row adapter names for mixed-adapter batches ("__base__" for none). */
  adapterNames?: readonly string[];
  /** One KV cache per row for incremental decoding; positions continue from each cache's length. */
  caches?: readonly KvCache[];
  /** Only compute logits for the last position of every row (generation). */
  lastTokenOnly?: boolean;
  /**
   * With caches: attend through the paged pool even when every cache starts empty, instead of the dense kernel
   * over the step's own keys. A prompt then computes each query the same way whether its first blocks were
   * computed now or shared from the prefix cache (the serving scheduler sets it while prefix caching is on).
   */
  pagedPrefill?: boolean;
}

export interface CausalLMOutput {
  logits: Tensor;
  loss?: Tensor;
}

/** A hook the generate/ layer installs so that models expose generate() without importing it. */
export type GenerateFn = (model: CausalLM, promptIds: number[][], options: Record<string, unknown>) => Promise<number[][]>;
let generateImpl: GenerateFn | null = null;
export function installGenerate(fn: GenerateFn): void {
  generateImpl = fn;
}

export class CausalLM extends Module {
  private kvPool: KvPool | null = null;
  private kvPoolOptions: KvPoolOptions = {};
  /** Module path of the decoder ("model", or "model.language_model" for Gemma 3's multimodal class). */
  readonly decoderPath: string;
  constructor(
    readonly config: ModelConfig,
    readonly model: DecoderModel,
    public lm_head: LinearLike | null,
    readonly dtype: DType,
    readonly device: string,
  ) {
    super();
    if (config.skippedTower) {
      this.registerModule('model', new MultimodalHolder(model));
      this.decoderPath = 'model.language_model';
    } else {
      this.registerModule('model', model);
      this.decoderPath = 'model';
    }
    if (lm_head) this.registerModule('lm_head', lm_head);
  }

  /** Forward pass; async for API symmetry with devices that compute asynchronously. */
  async forward(input: CausalLMInput): Promise<CausalLMOutput> {
    return this.run(input);
  }

  async generate(promptIds: number[][], options: Record<string, unknown> = {}): Promise<number[][]> {
    if (!generateImpl) throw new Error('Generation is not installed; import from "loraforge" (the package root).');
    return generateImpl(this, promptIds, options);
  }

  /** Synchronous forward pass used by training, generation and serving loops. */
  run(input: CausalLMInput): CausalLMOutput {
    const { h, ctx, B, T, segments } = this.decode(input);
    const logits = this.softcapLogits(this.lm_head ? this.lm_head.forward(h, ctx) : linear(h, this.model.embed_tokens.weight));
    if (input.labels === undefined) return { logits };
    const loss = crossEntropy(reshape(logits, [B * T, this.config.vocabSize]), this.shiftedLabels(input.labels, B, T, segments));
    return { logits, loss };
  }

  /**
   * The loss of run() without the logits: where the output projection is a plain frozen-or-trainable weight (the
   * lm_head Linear without bias, or the tied embeddings), projection and cross-entropy run fused in chunks of rows
   * (ops.linearCrossEntropy), so the [tokens, vocab] logits and their gradient never exist; with a LoRA or 4-bit
   * lm_head it is run()'s loss. Training loops that read only the loss call this.
   */
  runLoss(input: CausalLMInput & { labels: number[][] | Tensor }): Tensor {
    if (input.lastTokenOnly) throw new Error('runLoss computes the loss over every position; lastTokenOnly is for generation.');
    const head = this.lm_head === null ? this.model.embed_tokens.weight : this.lm_head instanceof Linear && this.lm_head.bias === null ? this.lm_head.weight : null;
    if (head === null) return this.run(input).loss!;
    const { h, B, T, segments } = this.decode(input);
    return linearCrossEntropy(reshape(h, [B * T, this.config.hiddenSize]), head, this.shiftedLabels(input.labels, B, T, segments), { softcap: this.config.finalLogitSoftcap });
  }

  /** Final-logit soft-capping (Gemma 2): cap * tanh(logits / cap) in the logits' dtype, or the logits unchanged. */
  private softcapLogits(logits: Tensor): Tensor {
    const cap = this.config.finalLogitSoftcap;
    return cap > 0 ? mulScalar(tanh(div(logits, full([], cap, { dtype: logits.dtype, device: this.device }))), cap) : logits;
  }

  /** The causal-LM targets as an int32 [B * T] tensor; a packed row's examples each lose their last target. */
  private shiftedLabels(labels: number[][] | Tensor, B: number, T: number, segments: number[][] | null): Tensor {
    return tensor(shiftLabels(labels, B, T, segments), [B * T], { dtype: 'int32', device: this.device });
  }

  /** Embeddings through the decoder layers and the final norm: the hidden states the output projection reads. */
  private decode(input: CausalLMInput): { h: Tensor; ctx: ForwardContext; B: number; T: number; segments: number[][] | null } {
    const ids = Array.isArray(input.inputIds) ? idsTensor(input.inputIds, this.device) : (input.inputIds as Tensor);
    const [B, T] = ids.shape as [number, number];
    if (input.caches && input.caches.length !== B) throw new Error(`${input.caches.length} KV caches for a batch of ${B} rows.`);
    const segments = input.segmentLengths ? packedSegments(input.segmentLengths, B, T, input.caches !== undefined) : null;
    const positions = this.positions(B, T, input, segments);
    // Padding that only follows a packed row's examples is a sequence of its own, which no example attends to:
    // such rows need no key mask (and the attention calls per sequence no mask slices).
    const tailOnly = segments !== null && input.attentionMask !== undefined && paddingFollowsSegments(input.attentionMask, input.segmentLengths!);
    const mask = input.attentionMask && !input.caches && !tailOnly ? paddingMask(input.attentionMask, T, this.device) : null;
    const ctx: ForwardContext = input.adapterNames ? { rowAdapters: input.adapterNames } : {};
    const caches = input.caches;
    const kv = caches ? { pool: caches[0]!.pool, step: pagedKvStep(caches, T, this.device), fresh: !input.pagedPrefill && caches.every((c) => c.length === 0) } : null;
    const inp: LayerInputs = { rope: this.ropeTables(B, T, positions, segments), mask, kv, ctx, segments };

    let h = this.model.embed_tokens.forward(ids, ctx);
    // Gemma: embeddings times sqrt(hidden_size), the factor itself rounded to the model dtype as transformers does.
    if (this.config.scaleEmbeddings) h = mulScalar(h, roundToDType(Math.sqrt(this.config.hiddenSize), this.dtype));
    for (const layer of this.model.layers.items) h = layer.forward(h, inp);
    h = this.model.norm.forward(h);
    if (input.caches) for (const c of input.caches) c.advance(T);
    if (input.lastTokenOnly) h = narrow(h, 1, T - 1, 1);
    return { h, ctx, B, T, segments };
  }

  /**
   * The cos/sin tables of each layer type for these positions (one computation when both types share a RoPE).
   * Packed rows take each sequence's tables as that sequence alone would: the frequencies of dynamic and longrope
   * RoPE depend on the largest position, which is then the sequence's own.
   */
  private ropeTables(B: number, T: number, positions: Int32Array, segments: number[][] | null): Record<LayerType, RopeTables> | null {
    const c = this.config;
    if (!c.ropeLayers.some((r) => r)) return null;
    const perRow = positions.length > T;
    let maxPosition = 0;
    for (const p of positions) if (p > maxPosition) maxPosition = p;
    const shape = perRow ? [B, T, c.rotaryDim] : [T, c.rotaryDim];
    const make = (type: LayerType): RopeTables => {
      const t = segments ? packedRopeTables(c.rope[type], c.rotaryDim, segments, T) : ropeTables(ropeFrequencies(c.rope[type], c.rotaryDim, maxPosition), positions);
      return { cos: fromHost(t.cos, shape, 'float32', this.device), sin: fromHost(t.sin, shape, 'float32', this.device) };
    };
    const full = make('full_attention');
    const sliding = c.rope.sliding_attention === c.rope.full_attention || !c.layerTypes.includes('sliding_attention') ? full : make('sliding_attention');
    return { full_attention: full, sliding_attention: sliding };
  }

  /**
   * Position ids: 0..T-1, continued from each cache, restarted at every packed sequence, or counted over the
   * attention mask's real tokens.
   */
  private positions(B: number, T: number, input: CausalLMInput, segments: number[][] | null): Int32Array {
    if (segments) {
      const out = new Int32Array(B * T);
      segments.forEach((row, b) => {
        let t = b * T;
        for (const len of row) for (let p = 0; p < len; p++) out[t++] = p;
      });
      return out;
    }
    if (input.caches) {
      const out = new Int32Array(B * T);
      input.caches.forEach((c, b) => {
        for (let t = 0; t < T; t++) out[b * T + t] = c.length + t;
      });
      return out;
    }
    if (input.attentionMask) {
      const out = new Int32Array(B * T);
      // transformers: cumsum(mask) - 1, with padded positions set to 1.
      input.attentionMask.forEach((row, b) => {
        let p = 0;
        for (let t = 0; t < T; t++) out[b * T + t] = row[t] ? p++ : 1;
      });
      return out;
    }
    return Int32Array.from({ length: T }, (_, t) => t);
  }

  /** This model's paged KV pool, opened on first use. */
  get pagedKvPool(): KvPool {
    const c = this.config;
    this.kvPool ??= new KvPool(c.numHiddenLayers, c.numKeyValueHeads, c.headDim, this.dtype, this.device, this.kvPoolOptions);
    return this.kvPool;
  }

  /**
   * A cache for one sequence of up to `capacity` positions, in this model's paged KV pool; given a prefix (the
   * prompt and what computes it), it starts with the prompt's published full blocks shared (KvCache).
   */
  newCache(capacity: number, prefix?: KvPrefix): KvCache {
    return new KvCache(this.pagedKvPool, capacity, prefix);
  }

  /** Options of the KV pool (maxBlocks); the pool must be unused, and is reopened with them on its next cache. */
  configureKvPool(options: KvPoolOptions): void {
    this.releaseKvPool();
    this.kvPoolOptions = options;
  }

  /** Frees the KV pool's memory (cached prefixes included); every cache from newCache() must be disposed first. */
  releaseKvPool(): void {
    if (this.kvPool && this.kvPool.freeBlocks !== this.kvPool.capacity) throw new Error('KV caches of this model are still in use; dispose them before releasing the pool.');
    this.kvPool?.dispose();
    this.kvPool = null;
  }
}

function idsTensor(rows: number[][], device: string): Tensor {
  const T = rows[0]?.length ?? 0;
  if (rows.length === 0 || T === 0) throw new Error('inputIds must hold at least one row with at least one token.');
  const flat = new Int32Array(rows.length * T);
  rows.forEach((r, b) => {
    if (r.length !== T) throw new Error(`inputIds rows have different lengths (${T} and ${r.length}); pad them and pass attentionMask.`);
    flat.set(r, b * T);
  });
  return fromHost(flat, [rows.length, T], 'int32', device);
}

/**
 * transformers' causal-LM shift: the target of position t is labels[t+1]; the last position has none, nor, in
 * packed rows, the last position of each sequence.
 */
function shiftLabels(labels: number[][] | Tensor, B: number, T: number, segments: number[][] | null): Int32Array {
  if (!Array.isArray(labels)) throw new Error('labels must be number[][] (use the same shape as inputIds).');
  const out = new Int32Array(B * T).fill(-100);
  for (let b = 0; b < B; b++) {
    const row = labels[b];
    if (!row || row.length !== T) throw new Error(`labels must have the shape of inputIds [${B}, ${T}].`);
    for (let t = 0; t + 1 < T; t++) out[b * T + t] = row[t + 1]!;
    let end = 0;
    for (const len of segments?.[b] ?? []) {
      end += len;
      out[b * T + end - 1] = -100;
    }
  }
  return out;
}

/**
 * CausalLMInput.segmentLengths checked against the batch, each row completed to T positions: padding after the
 * examples becomes one more sequence of its own, so that every position belongs to one.
 */
function packedSegments(lengths: readonly (readonly number[])[], B: number, T: number, cached: boolean): number[][] {
  if (cached) throw new Error('segmentLengths describes packed training rows and cannot be combined with KV caches; decode each sequence in its own row.');
  if (lengths.length !== B) throw new Error(`segmentLengths lists ${lengths.length} rows for a batch of ${B}.`);
  return lengths.map((row, b) => {
    let sum = 0;
    for (const n of row) {
      if (!Number.isInteger(n) || n < 1) throw new Error(`segmentLengths must hold whole numbers >= 1; row ${b} has ${String(n)}.`);
      sum += n;
    }
    if (sum > T) throw new Error(`segmentLengths of row ${b} add up to ${sum}, more than the row's ${T} tokens.`);
    return sum < T ? [...row, T - sum] : [...row];
  });
}

/** Whether every row's mask is 1 on its packed examples and 0 after them (right padding, nothing else hidden). */
function paddingFollowsSegments(mask: readonly (readonly number[])[], lengths: readonly (readonly number[])[]): boolean {
  return mask.every((row, b) => {
    const real = (lengths[b] ?? []).reduce((s, n) => s + n, 0);
    return row.every((m, t) => (t < real ? m === 1 : m === 0));
  });
}

/** cos/sin tables [B, T, rotaryDim] for packed rows: each sequence's as it has alone (computed once per length). */
function packedRopeTables(spec: ModelConfig['rope'][LayerType], rotaryDim: number, segments: number[][], T: number): { cos: Float32Array; sin: Float32Array } {
  const cos = new Float32Array(segments.length * T * rotaryDim);
  const sin = new Float32Array(segments.length * T * rotaryDim);
  const byLength = new Map<number, { cos: Float32Array; sin: Float32Array }>();
  segments.forEach((row, b) => {
    let at = b * T * rotaryDim;
    for (const len of row) {
      let t = byLength.get(len);
      if (!t) {
        t = ropeTables(ropeFrequencies(spec, rotaryDim, len - 1), Int32Array.from({ length: len }, (_, p) => p));
        byLength.set(len, t);
      }
      cos.set(t.cos, at);
      sin.set(t.sin, at);
      at += len * rotaryDim;
    }
  });
  return { cos, sin };
}

/** Additive key-padding mask [B, S=T]: -inf on padded keys. */
function paddingMask(mask: number[][], T: number, device: string): Tensor {
  const B = mask.length;
  const values = new Float32Array(B * T);
  for (let b = 0; b < B; b++) for (let j = 0; j < T; j++) values[b * T + j] = mask[b]![j] ? 0 : -Infinity;
  return fromHost(values, [B, T], 'float32', device);
}
