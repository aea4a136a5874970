import type { DeviceBuffer, HostArray } from '../tensor/buffer.js';
import type { DType } from '../tensor/dtype.js';

/**
 * The kernel list every device implements. Kernels read and write DeviceBuffers at element offsets; all
 * calculus lives in ops/, so a backend is correct when the shared conformance suite passes on it.
 * Floating kernels accept float32, bfloat16 and float16 buffers and accumulate in float32.
 * Unless a parameter says otherwise, inputs and outputs are contiguous from their offset.
 */
export type UnaryOp = 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'sigmoid' | 'silu' | 'abs' | 'square' | 'recip' | 'tanh' | 'relu' | 'gelu' | 'geluTanh';
/** siluGrad, geluGrad and geluTanhGrad exist for backward passes: d/da f(a) * b for their unary op f. */
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'maximum' | 'minimum' | 'siluGrad' | 'gt' | 'geluGrad' | 'geluTanhGrad';
export type ReduceOp = 'sum' | 'max';
/** The activations of a gated MLP that have a fused kernel: the UnaryOp of act(gate) * up. */
export type GatedActivation = 'silu' | 'gelu' | 'geluTanh';

/** Rows of a [rows, cols] matrix: row r starts at offset + r * rowStride, its columns are contiguous. */
export interface RowView {
  readonly buffer: DeviceBuffer;
  readonly offset: number;
  readonly rowStride: number;
}

/**
 * A gated MLP's activation over [rows, cols]: gate and up share one float dtype, the outputs have it too and are
 * contiguous. Every element gets the arithmetic of the composed ops it replaces, roundings included: a =
 * act(gate) rounded to the dtype, out = a * up; backward dup = dy * a, dgate = act'(gate) * round(dy * up).
 */
export interface GatedArgs {
  readonly act: GatedActivation;
  readonly gate: RowView;
  readonly up: RowView;
  readonly rows: number;
  readonly cols: number;
}

/** A strided view of a buffer: element offset and one stride per dimension of the accompanying shape. */
export interface View {
  readonly buffer: DeviceBuffer;
  readonly offset: number;
  readonly strides: readonly number[];
}

/** Batched row-major GEMM: C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b]; op(A) is m x k, op(B) k x n. */
export interface MatmulArgs {
  readonly a: DeviceBuffer;
  readonly aOffset: number;
  readonly b: DeviceBuffer;
  readonly bOffset: number;
  readonly c: DeviceBuffer;
  readonly cOffset: number;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly transA: boolean;
  readonly transB: boolean;
  readonly lda: number;
  readonly ldb: number;
  readonly ldc: number;
  readonly batch: number;
  /** Element strides between batch items; 0 broadcasts one matrix to every batch item. */
  readonly strideA: number;
  readonly strideB: number;
  readonly strideC: number;
  readonly alpha: number;
  readonly beta: number;
}

/** One adapter that rows of multiLora can name: A [rank, in] and B [out, rank], each contiguous from its offset. */
export interface LoraAdapterView {
  readonly a: DeviceBuffer;
  readonly aOffset: number;
  readonly b: DeviceBuffer;
  readonly bOffset: number;
  readonly rank: number;
  /** Multiplies B A x: alpha / rank, or alpha / sqrt(rank) with rsLoRA. */
  readonly scale: number;
}

/**
 * Every row of a batch through the LoRA adapter it names, in one call (Punica's BGMV/SGMV), for one or more
 * projections of the same input (q, k and v of attention; gate and up of an MLP). For each output o, with
 * s = o.rowAdapter[i]:
 *   o.out[i, :] = o.base[i, :] + scale_s * (x[i, :] A_s^T) B_s^T,   or o.base[i, :] where s = -1,
 * with A_s, B_s, scale_s from o.adapters. x [rows, inFeatures] and each base [rows, o.outFeatures] are contiguous
 * from their offsets, each out [rows, o.outFeatures] from element 0; an out may be its base's buffer. The adapters'
 * weights are read where they live (no stacked copies). The low-rank product is computed in float32 and added to
 * base once, rounded to out's dtype. Every output gets the same bits as it would in a call of its own.
 */
export interface MultiLoraArgs {
  readonly rows: number;
  readonly inFeatures: number;
  readonly x: DeviceBuffer;
  readonly xOffset: number;
  /** At least one; CUDA runs up to MULTI_LORA_MAX_OUTPUTS of them in one launch. */
  readonly outputs: readonly MultiLoraOutput[];
}

/** One projection of a MultiLoraArgs call. */
export interface MultiLoraOutput {
  readonly outFeatures: number;
  readonly base: DeviceBuffer;
  readonly baseOffset: number;
  readonly out: DeviceBuffer;
  readonly adapters: readonly LoraAdapterView[];
  /** One entry per row: an index into adapters, or -1 for no adapter. */
  readonly rowAdapter: Int32Array;
}

export interface AdamWArgs {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** 1-based step count after this update (bias correction uses it). */
  readonly step: number;
}

/**
 * Where one [batch, heads, positions, headDim] operand of attention lives in its buffer: the element offset and
 * the element strides of the first three dimensions; headDim is contiguous (stride 1). Transposed views such as
 * [B, T, H, D] memory read as [B, H, T, D] are described without a copy.
 */
export interface AttentionLayout {
  readonly offset: number;
  readonly batchStride: number;
  readonly headStride: number;
  readonly rowStride: number;
}

/**
 * Fused attention over q [batch, heads, seqQ, headDim] and k, v [batch, kvHeads, seqK, headDim]: query head h
 * reads key/value head floor(h / (heads / kvHeads)). Scores are scale * q.k plus the key mask.
 */
export interface AttentionArgs {
  readonly batch: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly seqQ: number;
  readonly seqK: number;
  readonly headDim: number;
  readonly scale: number;
  /** Query i sits at key position seqK - seqQ + i and sees keys 0..seqK - seqQ + i (needs seqQ <= seqK). */
  readonly causal: boolean;
  readonly q: AttentionLayout;
  readonly k: AttentionLayout;
  readonly v: AttentionLayout;
  readonly out: AttentionLayout;
  /** Additive float32 key mask [batch, seqK], contiguous from element 0 (0 keeps a key, -inf hides it), or null. */
  readonly keyMask: DeviceBuffer | null;
  /**
   * Sliding window: a whole number >= 0. When > 0, the query at key position p (seqK - seqQ + i) sees only keys j
   * with p - j < window, on top of causality and the key mask (Mistral, Qwen2 and Gemma's local layers); 0: none.
   */
  readonly window: number;
  /**
   * Logit soft-capping (Gemma 2): when > 0, each scaled score s becomes softcap * tanh(s / softcap) before any
   * mask is added; 0: none.
   */
  readonly softcap: number;
  /**
   * Attention sinks (gpt-oss): float32 [heads], one logit per query head that joins every row's softmax
   * normaliser without a value row (transformers' eager_attention_forward with `module.sinks`); absent or null: none.
   */
  readonly sinks?: DeviceBuffer | null;
}

/** AttentionArgs plus the layouts of the output gradient and of the three input gradients. */
export interface AttentionBackwardArgs extends AttentionArgs {
  readonly dout: AttentionLayout;
  readonly dq: AttentionLayout;
  readonly dk: AttentionLayout;
  readonly dv: AttentionLayout;
}

/**
 * A paged KV cache (vLLM's PagedAttention layout): per layer, a key pool and a value pool, each a contiguous
 * [poolBlocks, kvHeads, blockSize, headDim] buffer of one float dtype. Position p of batch row b lives in pool
 * block blockTable[b * maxBlocks + floor(p / blockSize)], slot p % blockSize. Rows only ever read their own
 * blocks, so a row's result never depends on the other rows of the batch.
 */
export interface PagedKvArgs {
  readonly batch: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly blockSize: number;
  /** Blocks in each pool. */
  readonly poolBlocks: number;
  /** int32 [batch, maxBlocks], contiguous from element 0; entries past a row's last used block are not read. */
  readonly blockTable: DeviceBuffer;
  readonly maxBlocks: number;
  /** int32 [batch]: the positions row b holds once this step's new ones are in (so at least `seq`). */
  readonly lengths: DeviceBuffer;
  /** New positions per row in this step: row b's are lengths[b] - seq .. lengths[b] - 1. */
  readonly seq: number;
}

/** PagedKvArgs plus where the step's new keys and values ([batch, kvHeads, seq, headDim]) live. */
export interface PagedKvWriteArgs extends PagedKvArgs {
  readonly k: AttentionLayout;
  readonly v: AttentionLayout;
}

/**
 * Attention of the step's queries q [batch, heads, seq, headDim] over the paged cache: query t of row b sits at
 * position lengths[b] - seq + t and sees that row's positions 0 through its own (causal); query head h reads
 * key/value head floor(h / (heads / kvHeads)). q and out have the pools' dtype; the softmax runs in float32.
 */
export interface PagedAttentionArgs extends PagedKvArgs {
  readonly heads: number;
  readonly scale: number;
  /** Sliding window as in AttentionArgs: when > 0, the query at position p sees positions j with p - j < window only. */
  readonly window: number;
  /** Logit soft-capping as in AttentionArgs: when > 0, each scaled score s becomes softcap * tanh(s / softcap). */
  readonly softcap: number;
  /** Attention sinks as in AttentionArgs. */
  readonly sinks?: DeviceBuffer | null;
  readonly q: AttentionLayout;
  readonly out: AttentionLayout;
}

/**
 * The Backend's methods that are fused kernels: a backend may leave any of them out, and ops/ then composes the
 * same result from the primitive kernels (`ops/composed-kernels.ts`; `gated` in `ops/elementwise.ts`). The list is
 * checked against the interface: it names every optional kernel and nothing required.
 */
export const FUSED_KERNELS = [
  'gated', 'gatedBackward', 'softmax', 'softmaxBackward', 'rmsNorm', 'rmsNormBackward', 'rope', 'crossEntropy', 'crossEntropyBackward', 'adamw',
  'attention', 'attentionBackward', 'nf4Dequantize',
  'pagedKvWrite', 'pagedAttention', 'multiLora',
] as const satisfies readonly FusedKernel[];

/** The optional methods of Backend other than batchInvariant (a mode, not a kernel). */
export type FusedKernel = Exclude<{ [K in keyof Backend]-?: object extends Pick<Backend, K> ? K : never }[keyof Backend], 'batchInvariant'>;
/** Compiles only while FUSED_KERNELS lists every FusedKernel. */
export const FUSED_KERNELS_COMPLETE: [Exclude<FusedKernel, (typeof FUSED_KERNELS)[number]>] extends [never] ? true : never = true;

export interface Backend {
  readonly device: string;
  /** A zero-filled buffer. */
  alloc(dtype: DType, length: number): DeviceBuffer;
  /**
   * A buffer whose contents are undefined until written: for outputs that a kernel overwrites in full, so that
   * no device spends a memory pass on zeros that are never read.
   */
  allocUninitialized(dtype: DType, length: number): DeviceBuffer;
  /** A new buffer holding a copy of host data (bfloat16/float16 given as raw Uint16 bits). */
  fromHost(dtype: DType, data: HostArray): DeviceBuffer;
  /** Reads `length` elements from `offset` back to the host. */
  toHost(buffer: DeviceBuffer, offset: number, length: number): Promise<HostArray>;
  /**
   * toHost waiting in place: for ops whose next kernel launches depend on values just computed (a
   * mixture-of-experts layer's routing decides its per-expert GEMM sizes), inside the synchronous forward pass.
   */
  toHostNow(buffer: DeviceBuffer, offset: number, length: number): HostArray;
  release(buffer: DeviceBuffer): void;
  /** Waits for queued work (no-op on synchronous backends). */
  synchronize(): Promise<void>;

  fill(out: DeviceBuffer, outOffset: number, length: number, value: number): void;
  /** Strided copy with dtype conversion: writes src (a view with `shape`) into dst (a view with the same shape). */
  copy(src: View, dst: View, shape: readonly number[]): void;
  unary(op: UnaryOp, x: DeviceBuffer, xOffset: number, out: DeviceBuffer, length: number): void;
  /** out (contiguous, `shape`) = a op b where a and b are views broadcast to `shape` (stride 0 on broadcast dims). */
  binary(op: BinaryOp, a: View, b: View, out: DeviceBuffer, shape: readonly number[]): void;
  /** Fused act(gate) * up (GatedArgs); without it ops/ composes unary and binary kernels. */
  gated?(args: GatedArgs, out: DeviceBuffer): void;
  /** Gradients of gated from dy (contiguous [rows, cols]); a null output is not computed. */
  gatedBackward?(args: GatedArgs, dy: DeviceBuffer, dgate: DeviceBuffer | null, dup: DeviceBuffer | null): void;
  /** out = x * scale + bias, elementwise. */
  affine(x: DeviceBuffer, xOffset: number, out: DeviceBuffer, length: number, scale: number, bias: number): void;
  /** x is [outer, axis, inner]; out is [outer, inner]. */
  reduce(op: ReduceOp, x: DeviceBuffer, xOffset: number, outer: number, axis: number, inner: number, out: DeviceBuffer): void;
  /**
   * Row-wise argmax of x [rows, cols] (float32, bfloat16 or float16, contiguous from xOffset) into int32
   * out [rows] from element 0: exactly what the host's greedy scan (generate/sampling.ts argmax:
   * `best = 0; for i >= 1: if x[i] > x[best] then best = i`) returns for each row. So ties go to the lowest index
   * (+0 and -0 tie), a row of -Infinity gives 0, NaN is never chosen except that a row whose first element is NaN
   * gives 0 (nothing compares greater than it), and a row of zero columns gives 0.
   */
  argmax(x: DeviceBuffer, xOffset: number, rows: number, cols: number, out: DeviceBuffer): void;
  matmul(args: MatmulArgs): void;
  /**
   * Runs fn with batch-invariant matmuls: row i of every product's output is a function of row i of op(A) (and of
   * op(B), C's row i) alone, with the same bits whatever m is and whatever the other rows hold, and multiLora computes
   * each row alone likewise. Serving decodes under it, so a sequence gets the same logits alone and in any batch.
   * Slower where the fastest kernels are not invariant. A backend whose matmul cannot promise it leaves this out.
   */
  batchInvariant?<T>(fn: () => T): T;
  /** MultiLoraArgs: per-row LoRA adapters over one batch, after the base product ran once for every row. */
  multiLora?(args: MultiLoraArgs): void;

  /** Row softmax over the last dim of [rows, cols]. */
  softmax?(x: DeviceBuffer, rows: number, cols: number, out: DeviceBuffer): void;
  /** dx = y * (dy - sum(dy * y)) per row. */
  softmaxBackward?(y: DeviceBuffer, dy: DeviceBuffer, rows: number, cols: number, dx: DeviceBuffer): void;

  /** out = x * rsqrt(mean(x^2) + eps) * weight per row; rstd receives the float32 reciprocal RMS per row. */
  rmsNorm?(x: DeviceBuffer, weight: DeviceBuffer, rows: number, cols: number, eps: number, out: DeviceBuffer, rstd: DeviceBuffer): void;
  /** dx always; dweight (accumulated over rows, overwritten) only when given. */
  rmsNormBackward?(x: DeviceBuffer, weight: DeviceBuffer, rstd: DeviceBuffer, dy: DeviceBuffer, rows: number, cols: number, dx: DeviceBuffer, dweight: DeviceBuffer | null): void;

  /**
   * Rotary embedding, rotate-half convention (transformers' Llama): x is [batch, seq, heads, headDim];
   * cos/sin are float32 [seq, rotaryDim] per batch item, `tableBatchStride` elements apart (0: shared by all rows).
   * The first rotaryDim elements of each head are rotated (rotate-half within them) and the other
   * headDim - rotaryDim are copied unchanged (partial rotary, transformers' Phi-3 q_rot / q_pass split);
   * rotaryDim is even, at most headDim, and headDim when omitted. inverse=true applies the transposed rotation
   * (the backward pass). out may be x.
   */
  rope?(x: DeviceBuffer, cos: DeviceBuffer, sin: DeviceBuffer, tableBatchStride: number, batch: number, seq: number, heads: number, headDim: number, out: DeviceBuffer, inverse: boolean, rotaryDim?: number): void;

  /** out[i, :] = table[ids[i], :]; ids are int32. */
  embedding(ids: DeviceBuffer, table: DeviceBuffer, count: number, dim: number, out: DeviceBuffer): void;
  /** dtable[ids[i], :] += dy[i, :] (dtable must be zeroed by the caller). */
  embeddingBackward(ids: DeviceBuffer, dy: DeviceBuffer, count: number, dim: number, dtable: DeviceBuffer): void;

  /**
   * Per-row cross-entropy of logits [rows, vocab] against int32 labels; rows whose label equals ignoreIndex
   * get loss 0. Writes float32 losses [rows] and the log-sum-exp [rows] that the backward pass reuses.
   */
  crossEntropy?(logits: DeviceBuffer, labels: DeviceBuffer, rows: number, vocab: number, ignoreIndex: number, losses: DeviceBuffer, lse: DeviceBuffer): void;
  /** dlogits = (softmax(logits) - onehot(label)) * scale[row]; zero on ignored rows. scale is float32 [rows]. */
  crossEntropyBackward?(logits: DeviceBuffer, lse: DeviceBuffer, labels: DeviceBuffer, scale: DeviceBuffer, rows: number, vocab: number, ignoreIndex: number, dlogits: DeviceBuffer): void;

  /** One AdamW step in place (torch semantics: decoupled decay, bias correction, eps after sqrt). */
  adamw?(param: DeviceBuffer, grad: DeviceBuffer, expAvg: DeviceBuffer, expAvgSq: DeviceBuffer, length: number, args: AdamWArgs): void;

  /**
   * NF4 dequantization: packed codes (two per byte, first element in the high nibble), one float32 absmax per
   * block of `blocksize`, the 16-entry code book; writes `length` elements to out.
   */
  nf4Dequantize?(packed: DeviceBuffer, absmax: DeviceBuffer, code: DeviceBuffer, length: number, blocksize: number, out: DeviceBuffer): void;

  /**
   * out = softmax(scale * q k^T + mask) v per (batch, head) without holding the [seqQ, seqK] scores; q, k, v and
   * out share one float dtype. lse receives the float32 log-sum-exp of each query's masked, scaled scores
   * [batch, heads, seqQ], contiguous; a query that sees no key gets lse -inf and an output row of zeros.
   */
  attention?(q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, out: DeviceBuffer, lse: DeviceBuffer, args: AttentionArgs): void;
  /**
   * Gradients of attention from the forward's out and lse (P is recomputed, never stored); dout, dq, dk and dv
   * have the dtype of q. dq, dk and dv are overwritten; dk and dv sum over the query heads of each group.
   */
  attentionBackward?(
    q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, out: DeviceBuffer, lse: DeviceBuffer, dout: DeviceBuffer,
    dq: DeviceBuffer, dk: DeviceBuffer, dv: DeviceBuffer, args: AttentionBackwardArgs,
  ): void;

  /** Stores the step's new keys and values (k, v: the pools' dtype) in the paged cache: PagedKvWriteArgs. */
  pagedKvWrite?(k: DeviceBuffer, v: DeviceBuffer, kPool: DeviceBuffer, vPool: DeviceBuffer, args: PagedKvWriteArgs): void;
  /** Attention over the paged cache for incremental decoding (no gradient): PagedAttentionArgs. */
  pagedAttention?(q: DeviceBuffer, kPool: DeviceBuffer, vPool: DeviceBuffer, out: DeviceBuffer, args: PagedAttentionArgs): void;
}
