/**
 * The Llama family in one file: Llama 2/3 (incl. llama3 and linear RoPE scaling), Mistral, Qwen2 (q/k/v bias),
 * SmolLM (tied embeddings), explicit head_dim, grouped-query attention. Parameter names match transformers.
 */
import {
  add,
  attention,
  crossEntropy,
  fromHost,
  linear,
  mul,
  narrow,
  pagedAttention,
  pagedKvWrite,
  reshape,
  rope,
  silu,
  tensor,
  transpose,
  type PagedKvStep,
} from '../ops/index.js';
import { Embedding, RMSNorm } from '../nn/layers.js';
import { forwardSharedInput, Module, ModuleList, type ForwardContext, type LinearLike } from '../nn/module.js';
import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import type { LlamaConfig } from './config.js';
import { KvCache, KvPool, pagedKvStep } from './kv-cache.js';
import { ropeInvFreq, ropeTables } from './rope.js';

/** Per-call inputs of the decoder stack, built once by LlamaForCausalLM.run and shared by every layer. */
interface LayerInputs {
  cos: Tensor;
  sin: Tensor;
  /** Additive key-padding mask [B, S] (0 or -inf), or null. */
  mask: Tensor | null;
  /** The paged KV cache when decoding incrementally: one cache per batch row, all in `pool`. */
  kv: { pool: KvPool; step: PagedKvStep; fresh: boolean } | null;
  ctx: ForwardContext;
}

export class LlamaAttention extends Module {
  q_proj: LinearLike;
  k_proj: LinearLike;
  v_proj: LinearLike;
  o_proj: LinearLike;
  constructor(
    readonly config: LlamaConfig,
    readonly layerIndex: number,
    projections: { q: LinearLike; k: LinearLike; v: LinearLike; o: LinearLike },
  ) {
    super();
    this.q_proj = this.registerModule('q_proj', projections.q);
    this.k_proj = this.registerModule('k_proj', projections.k);
    this.v_proj = this.registerModule('v_proj', projections.v);
    this.o_proj = this.registerModule('o_proj', projections.o);
  }

  forward(x: Tensor, inp: LayerInputs): Tensor {
    const [B, T] = x.shape as [number, number];
    const { numAttentionHeads: H, numKeyValueHeads: Hkv, headDim: D } = this.config;
    // Projections are [B, T, heads, D]; RoPE runs in that layout, attention wants [B, heads, T, D].
    const [qp, kp, vp] = forwardSharedInput([this.q_proj, this.k_proj, this.v_proj], x, inp.ctx) as [Tensor, Tensor, Tensor];
    const q = rope(reshape(qp, [B, T, H, D]), inp.cos, inp.sin);
    const k = rope(reshape(kp, [B, T, Hkv, D]), inp.cos, inp.sin);
    const v = reshape(vp, [B, T, Hkv, D]);
    const qh = transpose(q, 1, 2);
    const kh = transpose(k, 1, 2);
    const vh = transpose(v, 1, 2);
    const scale = 1 / Math.sqrt(D);
    let out: Tensor;
    if (inp.kv) {
      const { pool, step, fresh } = inp.kv;
      const kPool = pool.keys[this.layerIndex]!;
      const vPool = pool.values[this.layerIndex]!;
      pagedKvWrite(kPool, vPool, kh, vh, step);
      // A prefill (every cache empty) attends over its own keys with the dense kernel; later steps read the pages.
      out = fresh ? attention(qh, kh, vh, scale, null) : pagedAttention(qh, kPool, vPool, step, scale);
    } else {
      out = attention(qh, kh, vh, scale, inp.mask);
    }
    return this.o_proj.forward(reshape(transpose(out, 1, 2), [B, T, H * D]), inp.ctx);
  }
}

export class LlamaMLP extends Module {
  gate_proj: LinearLike;
  up_proj: LinearLike;
  down_proj: LinearLike;
  constructor(projections: { gate: LinearLike; up: LinearLike; down: LinearLike }) {
    super();
    this.gate_proj = this.registerModule('gate_proj', projections.gate);
    this.up_proj = this.registerModule('up_proj', projections.up);
    this.down_proj = this.registerModule('down_proj', projections.down);
  }
  forward(x: Tensor, ctx: ForwardContext): Tensor {
    const [gate, up] = forwardSharedInput([this.gate_proj, this.up_proj], x, ctx) as [Tensor, Tensor];
    return this.down_proj.forward(mul(silu(gate), up), ctx);
  }
}

export class LlamaDecoderLayer extends Module {
  constructor(
    readonly self_attn: LlamaAttention,
    readonly mlp: LlamaMLP,
    readonly input_layernorm: RMSNorm,
    readonly post_attention_layernorm: RMSNorm,
  ) {
    super();
    this.registerModule('self_attn', self_attn);
    this.registerModule('mlp', mlp);
    this.registerModule('input_layernorm', input_layernorm);
    this.registerModule('post_attention_layernorm', post_attention_layernorm);
  }
  forward(x: Tensor, inp: LayerInputs): Tensor {
    const h = add(x, this.self_attn.forward(this.input_layernorm.forward(x), inp));
    return add(h, this.mlp.forward(this.post_attention_layernorm.forward(h), inp.ctx));
  }
}

export class LlamaModel extends Module {
  constructor(
    readonly embed_tokens: Embedding,
    readonly layers: ModuleList<LlamaDecoderLayer>,
    readonly norm: RMSNorm,
  ) {
    super();
    this.registerModule('embed_tokens', embed_tokens);
    this.registerModule('layers', layers);
    this.registerModule('norm', norm);
  }
}

/** What run() takes: token ids as a tensor or nested arrays, and everything optional. */
export interface CausalLMInput {
  inputIds: number[][] | Tensor;
  /** Same shape as inputIds; -100 marks positions without a target. Shifted internally as transformers does. */
  labels?: number[][] | Tensor;
  /** 1 for real tokens, 0 for padding (left or right), per row. */
  attentionMask?: number[][];
  /** Per-row adapter names for mixed-adapter batches ("__base__" for none). */
  adapterNames?: readonly string[];
  /** One KV cache per row for incremental decoding; positions continue from each cache's length. */
  caches?: readonly KvCache[];
  /** Only compute logits for the last position of every row (generation). */
  lastTokenOnly?: boolean;
}

export interface CausalLMOutput {
  logits: Tensor;
  loss?: Tensor;
}

/** A hook the generate/ layer installs so that models expose generate() without importing it. */
export type GenerateFn = (model: LlamaForCausalLM, promptIds: number[][], options: Record<string, unknown>) => Promise<number[][]>;
let generateImpl: GenerateFn | null = null;
export function installGenerate(fn: GenerateFn): void {
  generateImpl = fn;
}

export class LlamaForCausalLM extends Module {
  readonly invFreq: Float32Array;
  private kvPool: KvPool | null = null;
  constructor(
    readonly config: LlamaConfig,
    readonly model: LlamaModel,
    public lm_head: LinearLike | null,
    readonly dtype: DType,
    readonly device: string,
  ) {
    super();
    this.registerModule('model', model);
    if (lm_head) this.registerModule('lm_head', lm_head);
    this.invFreq = ropeInvFreq(config.headDim, config.ropeTheta, config.ropeScaling);
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
    const ids = Array.isArray(input.inputIds) ? idsTensor(input.inputIds, this.device) : (input.inputIds as Tensor);
    const [B, T] = ids.shape as [number, number];
    if (input.caches && input.caches.length !== B) throw new Error(`${input.caches.length} KV caches for a batch of ${B} rows.`);
    const positions = this.positions(B, T, input);
    const perRow = positions.length > T;
    const tables = ropeTables(this.invFreq, positions);
    const D = this.config.headDim;
    const cos = fromHost(tables.cos, perRow ? [B, T, D] : [T, D], 'float32', this.device);
    const sin = fromHost(tables.sin, perRow ? [B, T, D] : [T, D], 'float32', this.device);
    const mask = input.attentionMask && !input.caches ? paddingMask(input.attentionMask, T, this.device) : null;
    const ctx: ForwardContext = input.adapterNames ? { rowAdapters: input.adapterNames } : {};
    const caches = input.caches;
    const kv = caches ? { pool: caches[0]!.pool, step: pagedKvStep(caches, T, this.device), fresh: caches.every((c) => c.length === 0) } : null;
    const inp: LayerInputs = { cos, sin, mask, kv, ctx };

    let h = this.model.embed_tokens.forward(ids);
    for (const layer of this.model.layers.items) h = layer.forward(h, inp);
    h = this.model.norm.forward(h);
    if (input.caches) for (const c of input.caches) c.advance(T);
    if (input.lastTokenOnly) h = narrow(h, 1, T - 1, 1);
    const logits = this.lm_head ? this.lm_head.forward(h, ctx) : linear(h, this.model.embed_tokens.weight);
    if (input.labels === undefined) return { logits };
    const shifted = shiftLabels(input.labels, B, T);
    const V = this.config.vocabSize;
    const loss = crossEntropy(reshape(logits, [B * T, V]), tensor(shifted, [B * T], { dtype: 'int32', device: this.device }));
    return { logits, loss };
  }

  /** Position ids: 0..T-1, continued from each cache, or counted over the attention mask's real tokens. */
  private positions(B: number, T: number, input: CausalLMInput): Int32Array {
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

  /** A cache for one sequence of up to `capacity` positions, in this model's paged KV pool. */
  newCache(capacity: number): KvCache {
    const c = this.config;
    this.kvPool ??= new KvPool(c.numHiddenLayers, c.numKeyValueHeads, c.headDim, this.dtype, this.device);
    return new KvCache(this.kvPool, capacity);
  }

  /** Frees the KV pool's memory; every cache from newCache() must be disposed first. */
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

/** transformers' causal-LM shift: the target of position t is labels[t+1]; the last position has none. */
function shiftLabels(labels: number[][] | Tensor, B: number, T: number): Int32Array {
  if (!Array.isArray(labels)) throw new Error('labels must be number[][] (use the same shape as inputIds).');
  const out = new Int32Array(B * T).fill(-100);
  for (let b = 0; b < B; b++) {
    const row = labels[b];
    if (!row || row.length !== T) throw new Error(`labels must have the shape of inputIds [${B}, ${T}].`);
    for (let t = 0; t + 1 < T; t++) out[b * T + t] = row[t + 1]!;
  }
  return out;
}

/** Additive key-padding mask [B, S=T]: -inf on padded keys. */
function paddingMask(mask: number[][], T: number, device: string): Tensor {
  const B = mask.length;
  const values = new Float32Array(B * T);
  for (let b = 0; b < B; b++) for (let j = 0; j < T; j++) values[b * T + j] = mask[b]![j] ? 0 : -Infinity;
  return fromHost(values, [B, T], 'float32', device);
}
