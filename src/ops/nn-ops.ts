import type { AttentionArgs, AttentionLayout, Backend, PagedKvArgs } from '../backend/backend.js';
import { contiguousStrides, formatShape, shapesEqual } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { full, hostArray, to } from './creation.js';
import { isFloatDType, type DType } from '../tensor/dtype.js';
import type { DeviceBuffer } from '../tensor/buffer.js';
import { allocLike, backendOf, makeResult, promote, sameDevice } from './engine.js';
import { kernels } from './composed-kernels.js';
import { add, div, greater, mul, mulScalar, tanh } from './elementwise.js';
import { matmul } from './matmul.js';
import { sum } from './reduce.js';
import { cat, compact, contiguous, expand, narrow, reshape, transpose } from './shape-ops.js';

/** Softmax over the last dim. */
export function softmax(x: Tensor): Tensor {
  const src = compact(x);
  const cols = src.shape[src.rank - 1]!;
  const rows = src.numel / cols;
  const backend = backendOf(src);
  const buf = allocLike(backend, src.dtype, src.shape);
  kernels(backend).softmax(src.buffer, rows, cols, buf);
  const out: Tensor = makeResult(buf, src.shape, 'softmax', [src], (g) => {
    const gc = compact(g);
    const dx = allocLike(backend, src.dtype, src.shape);
    kernels(backend).softmaxBackward(out.buffer, gc.buffer, rows, cols, dx);
    return [makeResult(dx, src.shape, 'softmaxBackward', [], null)];
  });
  return out;
}

/** RMSNorm over the last dim: x / sqrt(mean(x^2) + eps) * weight, with a hand-derived backward. */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  const src = compact(x);
  const w = compact(weight);
  const cols = src.shape[src.rank - 1]!;
  if (w.numel !== cols) throw new Error(`RMSNorm weight of ${w.numel} elements does not match hidden size ${cols}.`);
  const rows = src.numel / cols;
  const backend = sameDevice(src, w);
  const buf = allocLike(backend, src.dtype, src.shape);
  // Saved for backward as a tensor, so the step's scope frees it with the other activations.
  const rstd = scratch(backend, rows, 'rmsNormRstd');
  kernels(backend).rmsNorm(src.buffer, w.buffer, rows, cols, eps, buf, rstd);
  return makeResult(buf, src.shape, 'rmsNorm', [src, w], (g) => {
    const gc = compact(g);
    const dx = allocLike(backend, src.dtype, src.shape);
    const dw = w.requiresGrad ? backend.alloc(w.dtype, cols) : null;
    kernels(backend).rmsNormBackward(src.buffer, w.buffer, rstd, gc.buffer, rows, cols, dx, dw);
    return [makeResult(dx, src.shape, 'rmsNormBackward', [], null), dw ? makeResult(dw, w.shape, 'rmsNormWeightGrad', [], null) : null];
  });
}

/**
 * Rotary position embedding on x [batch, seq, heads, headDim] with float32 tables cos/sin of shape
 * [seq, rotaryDim] (shared) or [batch, seq, rotaryDim] (per row, e.g. left-padded batches). rotaryDim, the
 * tables' last dim, is headDim or, for partial rotary (transformers' Phi-3), fewer: the first rotaryDim
 * elements of each head rotate and the rest pass through unchanged.
 */
export function rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const src = compact(x);
  const [batch, seq, heads, headDim] = src.shape as [number, number, number, number];
  const c = compact(cos);
  const s = compact(sin);
  const rotaryDim = c.shape[c.rank - 1]!;
  const tableBatchStride = c.rank === 3 ? seq * rotaryDim : 0;
  if (!(rotaryDim > 0 && rotaryDim <= headDim && rotaryDim % 2 === 0) || c.shape[c.rank - 2] !== seq || (c.rank === 3 && c.shape[0] !== batch) || !shapesEqual(s.shape, c.shape)) {
    throw new Error(`RoPE tables ${formatShape(c.shape)} and ${formatShape(s.shape)} do not match x ${formatShape(src.shape)}: they must be [seq, rotaryDim] or [batch, seq, rotaryDim] with an even rotaryDim <= headDim.`);
  }
  const backend = sameDevice(src, c, s);
  const buf = allocLike(backend, src.dtype, src.shape);
  kernels(backend).rope(src.buffer, c.buffer, s.buffer, tableBatchStride, batch, seq, heads, headDim, buf, false, rotaryDim);
  return makeResult(buf, src.shape, 'rope', [src], (g) => {
    const gc = compact(g);
    const dx = allocLike(backend, src.dtype, src.shape);
    kernels(backend).rope(gc.buffer, c.buffer, s.buffer, tableBatchStride, batch, seq, heads, headDim, dx, true, rotaryDim);
    return [makeResult(dx, src.shape, 'ropeBackward', [], null)];
  });
}

/** Rows of `table` [vocab, dim] picked by int32 ids of any shape; output [...ids.shape, dim]. */
export function embedding(ids: Tensor, table: Tensor): Tensor {
  const idc = compact(ids);
  const t = compact(table);
  const dim = t.shape[1]!;
  const backend = sameDevice(idc, t);
  const outShape = [...idc.shape, dim];
  const buf = allocLike(backend, t.dtype, outShape);
  backend.embedding(idc.buffer, t.buffer, idc.numel, dim, buf);
  return makeResult(buf, outShape, 'embedding', [t], (g) => {
    const gc = compact(g);
    const dt = backend.alloc(t.dtype === 'float32' ? 'float32' : t.dtype, t.numel);
    backend.fill(dt, 0, t.numel, 0);
    backend.embeddingBackward(idc.buffer, gc.buffer, idc.numel, dim, dt);
    return [makeResult(dt, t.shape, 'embeddingBackward', [], null)];
  });
}

/**
 * Mean cross-entropy of logits [rows, vocab] against int32 labels [rows] over positions whose label is not
 * ignoreIndex (transformers' convention: -100). Returns a scalar; no targets at all give NaN, as torch does.
 * The target count stays on the device, so the loss needs no host read.
 */
export function crossEntropy(logits: Tensor, labels: Tensor, ignoreIndex = -100): Tensor {
  const lg = compact(logits);
  const lb = compact(labels);
  const vocab = lg.shape[lg.rank - 1]!;
  const rows = lg.numel / vocab;
  if (lb.numel !== rows) throw new Error(`${lb.numel} labels for ${rows} rows of logits.`);
  const backend = sameDevice(lg, lb);
  const losses = scratch(backend, rows, 'crossEntropyRows');
  const lse = scratch(backend, rows, 'crossEntropyLse');
  kernels(backend).crossEntropy(lg.buffer, lb.buffer, rows, vocab, ignoreIndex, losses, lse);
  const valid = reshape(greater(lb, full([], ignoreIndex, { device: lg.device })), [rows]);
  const count = sum(valid);
  const mean = div(sum(makeResult(losses, [rows], 'crossEntropyRows', [], null)), count);
  return makeResult(mean.buffer, [], 'crossEntropy', [lg], (g) => {
    const scale = compact(div(mul(valid, g), count));
    const dl = allocLike(backend, lg.dtype, lg.shape);
    kernels(backend).crossEntropyBackward(lg.buffer, lse, lb.buffer, scale.buffer, rows, vocab, ignoreIndex, dl);
    return [makeResult(dl, lg.shape, 'crossEntropyBackward', [], null)];
  });
}

/** The [B, heads, rows, D] view as the attention kernels read it (its last dimension is contiguous). */
function attentionLayout(t: Tensor): AttentionLayout {
  return { offset: t.offset, batchStride: t.strides[0]!, headStride: t.strides[1]!, rowStride: t.strides[2]! };
}

/** t in `dtype` with a contiguous last dimension: t itself when it already is one (strided views pass through). */
function attentionOperand(t: Tensor, dtype: DType): Tensor {
  const c = to(t, { dtype });
  return c.strides[c.rank - 1] === 1 || c.shape[c.rank - 1] === 1 ? c : contiguous(c);
}

/**
 * Strides for a fresh buffer of t's shape in t's memory order when t's elements fill one dense block (a
 * transposed view, a batch row of one), else row-major: gradients then match their input's layout, and the
 * transposes that produced the input take them back without a copy.
 */
function denseStridesLike(t: Tensor): number[] {
  const out = contiguousStrides(t.shape);
  const dims = t.shape.map((_, i) => i).filter((i) => t.shape[i]! > 1).sort((x, y) => t.strides[x]! - t.strides[y]!);
  let expected = 1;
  for (const d of dims) {
    if (t.strides[d] !== expected) return out;
    expected *= t.shape[d]!;
  }
  for (const d of dims) out[d] = t.strides[d]!;
  return out;
}

/**
 * Optional attention features (transformers' semantics). `window` > 0: a sliding window, the query at key position
 * p sees only keys j with p - j < window (on top of causality and the key mask). `softcap` > 0: every scaled score
 * s becomes softcap * tanh(s / softcap) before any mask is added (Gemma 2). 0 or absent: none. `sinks` [heads]: one
 * logit per query head that joins each row's softmax normaliser without a value row (gpt-oss); a frozen model
 * tensor (its own gradient is not computed, so one that requires grad is refused).
 */
export interface AttentionExtras {
  readonly window?: number;
  readonly softcap?: number;
  readonly sinks?: Tensor | null;
  /**
   * Packed rows (causal self-attention, T = S): per batch row, the lengths of the sequences it holds, in order,
   * summing to the row's length. A query sees only the keys of its own sequence (block-diagonal causal), and a
   * window counts within it. Absent or null: each row is one sequence.
   */
  readonly segments?: readonly (readonly number[])[] | null;
}

/**
 * The segments of a packed batch checked against its shape, or null when every row is one sequence (the plain
 * kernels then serve it). Each entry is [batch row, first position, length].
 */
function attentionSegments(segments: AttentionExtras['segments'], B: number, T: number, S: number, causal: boolean): [number, number, number][] | null {
  if (!segments) return null;
  if (!causal || T !== S) throw new Error(`attention segments describe packed rows of causal self-attention, so they need causal attention with T = S; got causal ${causal}, T = ${T}, S = ${S}.`);
  if (segments.length !== B) throw new Error(`attention segments list ${segments.length} rows for a batch of ${B}.`);
  const pieces: [number, number, number][] = [];
  segments.forEach((row, b) => {
    let start = 0;
    for (const len of row) {
      if (!Number.isInteger(len) || len < 1) throw new Error(`attention segment lengths must be whole numbers >= 1; row ${b} has ${String(len)}.`);
      pieces.push([b, start, len]);
      start += len;
    }
    if (start !== T) throw new Error(`attention segments of row ${b} cover ${start} positions, not the row's ${T}.`);
  });
  return pieces.length === B ? null : pieces;
}

/** A layout moved to batch row b, position `start`: the view of one packed sequence as a batch of one. */
function shiftLayout(l: AttentionLayout, b: number, start: number): AttentionLayout {
  return { ...l, offset: l.offset + b * l.batchStride + start * l.rowStride };
}

/** The extras with their defaults, checked once for every attention entry point against `heads` query heads. */
function attentionExtras(extra: AttentionExtras, heads: number): { window: number; softcap: number; sinks: Tensor | null } {
  const { window = 0, softcap = 0, sinks = null } = extra;
  const valid = (x: number): boolean => typeof x === 'number' && Number.isFinite(x) && x >= 0;
  if (!valid(window) || !Number.isInteger(window) || !valid(softcap)) {
    throw new Error(`attention's window must be a whole number >= 0 and its softcap a finite number >= 0 (0 turns either off); got window ${String(window)}, softcap ${String(softcap)}.`);
  }
  if (sinks && (sinks.rank !== 1 || sinks.shape[0] !== heads)) throw new Error(`attention sinks must be one logit per query head [${heads}], got ${formatShape(sinks.shape)}.`);
  if (sinks?.requiresGrad) throw new Error('attention sinks are frozen model weights here (their gradient is not computed); set requiresGrad = false on them.');
  return { window, softcap, sinks: sinks ? compact(to(sinks, { dtype: 'float32' })) : null };
}

interface AttentionShape {
  B: number;
  H: number;
  Hkv: number;
  T: number;
  S: number;
  D: number;
}

function attentionShape(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null, causal: boolean): AttentionShape {
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) {
    throw new Error(`attention takes q [B, H, T, D] and k, v [B, Hkv, S, D]; got ${formatShape(q.shape)}, ${formatShape(k.shape)}, ${formatShape(v.shape)}.`);
  }
  const [B, H, T, D] = q.shape as [number, number, number, number];
  const [, Hkv, S] = k.shape as [number, number, number, number];
  if (k.shape[0] !== B || k.shape[3] !== D || !shapesEqual(k.shape, v.shape)) {
    throw new Error(`attention: k ${formatShape(k.shape)} and v ${formatShape(v.shape)} must both be [${B}, Hkv, S, ${D}] for q ${formatShape(q.shape)}.`);
  }
  if (H % Hkv !== 0) throw new Error(`${H} query heads are not a multiple of ${Hkv} key/value heads.`);
  const notFloat = [q, k, v].find((t) => !isFloatDType(t.dtype));
  if (notFloat) throw new Error(`attention needs float tensors, got ${notFloat.dtype}.`);
  if (T === 0 || S === 0) throw new Error(`attention needs at least one query and one key; got T = ${T}, S = ${S}.`);
  if (causal && T > S) throw new Error(`causal attention puts the ${T} queries at the last of the ${S} key positions, so it needs T <= S.`);
  if (mask && (mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== S)) {
    throw new Error(`The attention mask must be an additive key mask [${B}, ${S}] (0 keeps a key, -inf hides it); got ${formatShape(mask.shape)}.`);
  }
  return { B, H, Hkv, T, S, D };
}

/**
 * Causal attention with grouped-query heads as one fused kernel (flash-style: the [T, S] scores are never
 * held), with a hand-derived backward (FlashAttention-2: P recomputed from the saved log-sum-exp).
 * q [B, H, T, D], k/v [B, Hkv, S, D], H a multiple of Hkv; the T queries sit at the last T of the S key
 * positions. Any view whose last dimension is contiguous is read in place (the model's transposed
 * [B, T, H, D] projections, KV-cache prefixes). `mask` is an additive key-padding mask [B, S] (0 or -inf).
 * The result is a [B, H, T, D] view of [B, T, H, D] memory, so transposing it back to tokens is free.
 * `extra` adds a sliding window and logit soft-capping (AttentionExtras).
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, scale: number, mask?: Tensor | null, causal = true, extra: AttentionExtras = {}): Tensor {
  const { B, H, Hkv, T, S, D } = attentionShape(q, k, v, mask ?? null, causal);
  const { window, softcap, sinks } = attentionExtras(extra, H);
  const segments = attentionSegments(extra.segments, B, T, S, causal);
  // Without the fused kernels (forward and backward go together), the composed reference: it holds the
  // [T, S] scores, and autograd differentiates it. One copy gives its result the fused kernels' layout.
  const fused = backendOf(q);
  if (!fused.attention || !fused.attentionBackward) return transpose(contiguous(transpose(attentionReference(q, k, v, scale, mask, causal, extra), 1, 2)), 1, 2);
  const dtype = promote(q, k, v);
  const qa = attentionOperand(q, dtype);
  const ka = attentionOperand(k, dtype);
  const va = attentionOperand(v, dtype);
  const backend = sameDevice(qa, ka, va);
  const keyMask = mask ? compact(to(mask, { dtype: 'float32' })) : null;
  const outStrides = [T * H * D, D, H * D, 1];
  const outBuf = backend.alloc(dtype, B * H * T * D);
  const whole: AttentionArgs = {
    batch: B, heads: H, kvHeads: Hkv, seqQ: T, seqK: S, headDim: D, scale, causal, window, softcap, sinks: sinks?.buffer ?? null,
    q: attentionLayout(qa), k: attentionLayout(ka), v: attentionLayout(va),
    out: { offset: 0, batchStride: outStrides[0]!, headStride: outStrides[1]!, rowStride: outStrides[2]! },
    keyMask: keyMask ? keyMask.buffer : null,
  };
  // Packed rows run one kernel call per sequence, over views of the operands (offsets into the same buffers),
  // each with its own lse; every position belongs to one sequence, so the calls together write the whole output.
  const pieces = (segments ?? [null]).map((seg) => {
    if (!seg) return { seg, args: whole, lse: makeResult(backend.alloc('float32', B * H * T), [B, H, T], 'attentionLse', [], null) };
    const [b, start, len] = seg;
    const pieceMask = keyMask ? compact(narrow(narrow(keyMask, 0, b, 1), 1, start, len)).buffer : null;
    const args: AttentionArgs = {
      ...whole, batch: 1, seqQ: len, seqK: len, keyMask: pieceMask,
      q: shiftLayout(whole.q, b, start), k: shiftLayout(whole.k, b, start), v: shiftLayout(whole.v, b, start), out: shiftLayout(whole.out, b, start),
    };
    return { seg, args, lse: makeResult(backend.alloc('float32', H * len), [1, H, len], 'attentionLse', [], null) };
  });
  for (const p of pieces) backend.attention!(qa.buffer, ka.buffer, va.buffer, outBuf, p.lse.buffer, p.args);
  return makeResult(outBuf, [B, H, T, D], 'attention', [qa, ka, va], (g) => {
    const dout = attentionOperand(g, dtype);
    const grads = [qa, ka, va].map((t) => makeResult(backend.alloc(dtype, t.numel), t.shape, 'attentionBackward', [], null, denseStridesLike(t)));
    const [dq, dk, dv] = grads as [Tensor, Tensor, Tensor];
    const layouts = [dout, dq, dk, dv].map(attentionLayout) as [AttentionLayout, AttentionLayout, AttentionLayout, AttentionLayout];
    for (const { seg, args, lse } of pieces) {
      const [gl, dql, dkl, dvl] = seg ? layouts.map((l) => shiftLayout(l, seg[0], seg[1])) : layouts;
      backend.attentionBackward!(qa.buffer, ka.buffer, va.buffer, outBuf, lse.buffer, dout.buffer, dq.buffer, dk.buffer, dv.buffer, {
        ...args, dout: gl!, dq: dql!, dk: dkl!, dv: dvl!,
      });
    }
    return grads;
  }, outStrides);
}

/**
 * One forward pass's view of a paged KV cache (Backend's PagedKvArgs): which pool blocks each batch row owns and
 * how many positions it holds once this step's `seq` new ones are written. Built by models/kv-cache.ts.
 */
export interface PagedKvStep {
  /** int32 [batch, maxBlocks]. */
  readonly blockTable: Tensor;
  /** int32 [batch]. */
  readonly lengths: Tensor;
  readonly blockSize: number;
  readonly seq: number;
}

function pagedArgs(pool: Tensor, step: PagedKvStep): PagedKvArgs {
  if (pool.rank !== 4 || !pool.isContiguous()) throw new Error(`a paged KV pool must be a contiguous [blocks, kvHeads, blockSize, headDim] tensor, got ${formatShape(pool.shape)}.`);
  const [poolBlocks, kvHeads, blockSize, headDim] = pool.shape as [number, number, number, number];
  if (blockSize !== step.blockSize) throw new Error(`the paged KV pool has blocks of ${blockSize} positions but the step was built for ${step.blockSize}.`);
  if (!isFloatDType(pool.dtype)) throw new Error(`the paged KV cache needs float pools, got ${pool.dtype}.`);
  if (step.blockTable.dtype !== 'int32' || step.lengths.dtype !== 'int32') throw new Error('the paged KV block table and lengths must be int32.');
  const [batch, maxBlocks] = step.blockTable.shape as [number, number];
  if (step.lengths.shape[0] !== batch) throw new Error(`paged KV: ${step.lengths.shape[0]} lengths for a block table of ${batch} rows.`);
  return { batch, kvHeads, headDim, blockSize, poolBlocks, blockTable: compact(step.blockTable).buffer, maxBlocks, lengths: compact(step.lengths).buffer, seq: step.seq };
}

/** The value pool must match the key pool in shape and dtype (the kernels read both with one layout). */
function checkValuePool(kPool: Tensor, vPool: Tensor): void {
  if (!shapesEqual(vPool.shape, kPool.shape) || vPool.dtype !== kPool.dtype || !vPool.isContiguous()) {
    throw new Error(`paged KV: the value pool (${vPool.dtype} ${formatShape(vPool.shape)}) must be a contiguous tensor matching the key pool (${kPool.dtype} ${formatShape(kPool.shape)}).`);
  }
}

/** Stores k, v [batch, kvHeads, seq, headDim] (one step's new positions) in the paged pools; no gradient. */
export function pagedKvWrite(kPool: Tensor, vPool: Tensor, k: Tensor, v: Tensor, step: PagedKvStep): void {
  const args = pagedArgs(kPool, step);
  const want = [args.batch, args.kvHeads, step.seq, args.headDim];
  if (!shapesEqual(k.shape, want) || !shapesEqual(v.shape, want)) throw new Error(`pagedKvWrite: k ${formatShape(k.shape)} and v ${formatShape(v.shape)} must be ${formatShape(want)}.`);
  checkValuePool(kPool, vPool);
  const ka = attentionOperand(k, kPool.dtype);
  const va = attentionOperand(v, kPool.dtype);
  const backend = sameDevice(kPool, vPool, ka, va);
  if (backend.pagedKvWrite) {
    backend.pagedKvWrite(ka.buffer, va.buffer, kPool.buffer, vPool.buffer, { ...args, k: attentionLayout(ka), v: attentionLayout(va) });
    return;
  }
  // Composed: each row's new positions copied into their blocks, one strided copy per block they touch.
  const { blockSize, kvHeads, headDim: D } = args;
  for (const { b, runs } of pagedRows(backend, step, args)) {
    for (const [pool, src] of [[kPool, ka], [vPool, va]] as const) {
      for (const { block, slot, from, n } of runs) {
        if (from < 0) continue;
        backend.copy(
          { buffer: src.buffer, offset: src.offset + b * src.strides[0]! + from * src.strides[2]!, strides: [src.strides[1]!, src.strides[2]!, 1] },
          { buffer: pool.buffer, offset: (block * kvHeads * blockSize + slot) * D, strides: [blockSize * D, D, 1] },
          [kvHeads, n, D],
        );
      }
    }
  }
}

/**
 * Each batch row's positions 0 .. lengths[b] - 1 as runs within its blocks (the host reads the block table and
 * lengths): pool block, first slot, length, and where the run starts among the step's `seq` new positions
 * (negative for runs of positions written earlier; a run is split where the new positions begin).
 */
function pagedRows(backend: Backend, step: PagedKvStep, args: PagedKvArgs): { b: number; length: number; runs: { block: number; slot: number; from: number; n: number }[] }[] {
  const table = backend.toHostNow(args.blockTable, 0, args.batch * args.maxBlocks) as Int32Array;
  const lengths = backend.toHostNow(args.lengths, 0, args.batch) as Int32Array;
  return Array.from({ length: args.batch }, (_, b) => {
    const length = lengths[b]!;
    const first = length - step.seq;
    if (first < 0) throw new Error(`paged KV: row ${b} holds ${length} positions, fewer than the step's ${step.seq} new ones.`);
    if (Math.ceil(length / args.blockSize) > args.maxBlocks) throw new Error(`paged KV: row ${b} holds ${length} positions, more than its ${args.maxBlocks} blocks of ${args.blockSize}.`);
    const runs: { block: number; slot: number; from: number; n: number }[] = [];
    for (let p = 0; p < length;) {
      const slot = p % args.blockSize;
      const end = Math.min(length, p - slot + args.blockSize, p < first ? first : length);
      const block = table[b * args.maxBlocks + Math.floor(p / args.blockSize)]!;
      if (!(block >= 0 && block < args.poolBlocks)) throw new Error(`paged KV: row ${b} names block ${block}, outside the pool of ${args.poolBlocks}.`);
      runs.push({ block, slot, from: p - first, n: end - p });
      p = end;
    }
    return { b, length, runs };
  });
}

/**
 * Causal attention of q [batch, heads, seq, headDim] over each row's cached positions (the step's own keys must
 * be written first): query t of row b sits at position lengths[b] - seq + t. Inference only (no gradient).
 * `extra` adds a sliding window and logit soft-capping (AttentionExtras).
 */
export function pagedAttention(q: Tensor, kPool: Tensor, vPool: Tensor, step: PagedKvStep, scale: number, extra: AttentionExtras = {}): Tensor {
  const args = pagedArgs(kPool, step);
  const { window, softcap, sinks } = attentionExtras(extra, q.shape[1] ?? 0);
  if (q.rank !== 4 || q.shape[0] !== args.batch || q.shape[2] !== step.seq || q.shape[3] !== args.headDim) {
    throw new Error(`pagedAttention: q ${formatShape(q.shape)} must be [${args.batch}, heads, ${step.seq}, ${args.headDim}].`);
  }
  const H = q.shape[1]!;
  checkValuePool(kPool, vPool);
  if (H % args.kvHeads !== 0) throw new Error(`${H} query heads are not a multiple of ${args.kvHeads} key/value heads.`);
  const qa = attentionOperand(q, kPool.dtype);
  const backend = sameDevice(qa, kPool, vPool);
  const { batch: B, headDim: D } = args;
  const T = step.seq;
  // [B, T, H, D] memory, read as [B, H, T, D]: the layout the output projection wants after its transpose.
  const outStrides = [T * H * D, D, H * D, 1];
  if (!backend.pagedAttention) {
    // Composed: each row's cached positions gathered from their blocks into dense keys and values, then dense
    // attention of each query alone over the positions up to its own (as the kernels compute each query alone,
    // so a prefill over shared blocks gets a cold prefill's bits), queries and rows concatenated.
    const rows = pagedRows(backend, step, args).map(({ b, length, runs }) => {
      const [kb, vb] = [kPool, vPool].map((pool) => {
        const dense = backend.allocUninitialized(pool.dtype, args.kvHeads * length * D);
        let at = 0;
        for (const { block, slot, n } of runs) {
          backend.copy(
            { buffer: pool.buffer, offset: (block * args.kvHeads * args.blockSize + slot) * D, strides: [args.blockSize * D, D, 1] },
            { buffer: dense, offset: at * D, strides: [length * D, D, 1] },
            [args.kvHeads, n, D],
          );
          at += n;
        }
        return makeResult(dense, [1, args.kvHeads, length, D], 'pagedGather', [], null);
      }) as [Tensor, Tensor];
      const qb = narrow(qa, 0, b, 1);
      const queries = Array.from({ length: T }, (_, t) => {
        const seen = length - T + t + 1;
        return attention(narrow(qb, 2, t, 1), narrow(kb, 2, 0, seen), narrow(vb, 2, 0, seen), scale, null, true, { window, softcap, sinks: extra.sinks ?? null });
      });
      return queries.length === 1 ? queries[0]! : cat(queries, 2);
    });
    // The kernels' [B, T, H, D] memory (contiguous() copies only where the pieces are not already in it).
    return transpose(contiguous(transpose(rows.length === 1 ? rows[0]! : cat(rows, 0), 1, 2)), 1, 2);
  }
  const out = backend.allocUninitialized(kPool.dtype, B * H * T * D);
  backend.pagedAttention(qa.buffer, kPool.buffer, vPool.buffer, out, {
    ...args, heads: H, scale, window, softcap, sinks: sinks?.buffer ?? null, q: attentionLayout(qa), out: { offset: 0, batchStride: outStrides[0]!, headStride: outStrides[1]!, rowStride: outStrides[2]! },
  });
  return makeResult(out, [B, H, T, D], 'pagedAttention', [], null, outStrides);
}

/**
 * The same attention composed from GEMMs, masks and a softmax, materialising the [B, H, T, S] scores: the
 * reference the fused kernels are tested against. GQA runs without repeat_kv copies. The soft-cap goes through
 * tanh and the window through a position mask, so the composition stays differentiable.
 */
export function attentionReference(q: Tensor, k: Tensor, v: Tensor, scale: number, mask?: Tensor | null, causal = true, extra: AttentionExtras = {}): Tensor {
  const { B, H, Hkv, T, S, D } = attentionShape(q, k, v, mask ?? null, causal);
  const { window, softcap, sinks } = attentionExtras(extra, H);
  const groups = H / Hkv;
  // [B, Hkv, groups*T, D]: each KV head serves its group of query heads in one GEMM, no repeat_kv copy.
  const qg = reshape(compact(q), [B, Hkv, groups * T, D]);
  const scaled = mulScalar(matmul(qg, transpose(k)), scale);
  const capped = softcap > 0 ? mulScalar(tanh(mulScalar(scaled, 1 / softcap)), softcap) : scaled;
  const scores = reshape(capped, [B, Hkv, groups, T, S]);
  // Masks take the scores' dtype so that a bf16 model stays bf16 (transformers builds them in the model dtype).
  const masked = causal || window > 0 ? add(scores, positionMask(T, S, causal, window, q.device, scores.dtype)) : scores;
  const padded = mask ? add(masked, reshape(to(mask, { dtype: scores.dtype }), [B, 1, 1, 1, S])) : masked;
  const pieces = attentionSegments(extra.segments, B, T, S, causal);
  const withPad = pieces ? add(padded, reshape(segmentMask(pieces, B, T, q.device, scores.dtype), [B, 1, 1, T, S])) : padded;
  // Sinks: one more softmax column per head (transformers' cat([attn_weights, sinks])), dropped after.
  const withSinks = sinks
    ? cat([withPad, expand(reshape(to(sinks, { dtype: scores.dtype }), [1, Hkv, groups, 1, 1]), [B, Hkv, groups, T, 1])], 4)
    : withPad;
  const probs = softmax(reshape(withSinks, [B, Hkv, groups * T, sinks ? S + 1 : S]));
  return reshape(matmul(sinks ? narrow(probs, 3, 0, S) : probs, v), [B, H, T, D]);
}

/** Additive [B, T, T] mask of packed rows: -inf wherever query and key belong to different sequences. */
function segmentMask(pieces: readonly [number, number, number][], B: number, T: number, device: string, dtype: DType): Tensor {
  const values = new Float32Array(B * T * T).fill(-Infinity);
  for (const [b, start, len] of pieces) {
    for (let i = start; i < start + len; i++) values.fill(0, (b * T + i) * T + start, (b * T + i) * T + start + len);
  }
  return makeResult(backendOf(full([], 0, { device })).fromHost(dtype, hostArray(dtype, values)), [B, T, T], 'segmentMask', [], null);
}

const maskCache = new Map<string, Tensor>();

/** Additive causal mask [T, S]: query i (at key position S-T+i) sees keys 0..S-T+i. Cached per size. */
export function causalMask(T: number, S: number, device: string, dtype: DType = 'float32'): Tensor {
  return positionMask(T, S, true, 0, device, dtype);
}

/**
 * Additive mask [T, S] over positions: query i sits at key position p = S-T+i; causal hides keys j > p, a window
 * > 0 hides keys with p - j >= window. Cached per size.
 */
function positionMask(T: number, S: number, causal: boolean, window: number, device: string, dtype: DType): Tensor {
  const key = `${T}x${S}${causal ? 'c' : ''}w${window}@${device}:${dtype}`;
  const hit = maskCache.get(key);
  if (hit && !hit.disposed) return hit;
  const values = new Float32Array(T * S);
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < S; j++) {
      const p = S - T + i;
      values[i * S + j] = (causal && j > p) || (window > 0 && p - j >= window) ? -Infinity : 0;
    }
  }
  const backend = backendOf(full([], 0, { device }));
  const t = makeResult(backend.fromHost(dtype, hostArray(dtype, values)), [T, S], 'positionMask', [], null).keep();
  if (maskCache.size > 64) maskCache.clear();
  maskCache.set(key, t);
  return t;
}

/** A float32 [n] buffer owned by a tensor (so scopes release it); returns the buffer for kernel calls. */
function scratch(backend: Backend, n: number, name: string): DeviceBuffer {
  return makeResult(backend.alloc('float32', n), [n], name, [], null).buffer;
}
