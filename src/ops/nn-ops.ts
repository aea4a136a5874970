import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { full, hostArray, to } from './creation.js';
import type { DType } from '../tensor/dtype.js';
import { allocLike, backendOf, makeResult, sameDevice } from './engine.js';
import { add, div, greater, mul, mulScalar } from './elementwise.js';
import { matmul } from './matmul.js';
import { sum } from './reduce.js';
import { compact, reshape, transpose } from './shape-ops.js';

/** Softmax over the last dim. */
export function softmax(x: Tensor): Tensor {
  const src = compact(x);
  const cols = src.shape[src.rank - 1]!;
  const rows = src.numel / cols;
  const backend = backendOf(src);
  const buf = allocLike(backend, src.dtype, src.shape);
  backend.softmax(src.buffer, rows, cols, buf);
  const out: Tensor = makeResult(buf, src.shape, 'softmax', [src], (g) => {
    const gc = compact(g);
    const dx = allocLike(backend, src.dtype, src.shape);
    backend.softmaxBackward(out.buffer, gc.buffer, rows, cols, dx);
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
  const rstd = backend.alloc('float32', rows);
  backend.rmsNorm(src.buffer, w.buffer, rows, cols, eps, buf, rstd);
  return makeResult(buf, src.shape, 'rmsNorm', [src, w], (g) => {
    const gc = compact(g);
    const dx = allocLike(backend, src.dtype, src.shape);
    const dw = w.requiresGrad ? backend.alloc(w.dtype, cols) : null;
    backend.rmsNormBackward(src.buffer, w.buffer, rstd, gc.buffer, rows, cols, dx, dw);
    return [makeResult(dx, src.shape, 'rmsNormBackward', [], null), dw ? makeResult(dw, w.shape, 'rmsNormWeightGrad', [], null) : null];
  });
}

/**
 * Rotary position embedding on x [batch, seq, heads, headDim] with float32 tables cos/sin of shape
 * [seq, headDim] (shared) or [batch, seq, headDim] (per row, e.g. left-padded batches).
 */
export function rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const src = compact(x);
  const [batch, seq, heads, headDim] = src.shape as [number, number, number, number];
  const c = compact(cos);
  const s = compact(sin);
  const tableBatchStride = c.rank === 3 ? seq * headDim : 0;
  if (c.shape[c.rank - 1] !== headDim || c.shape[c.rank - 2] !== seq) {
    throw new Error(`RoPE tables ${formatShape(c.shape)} do not match x ${formatShape(src.shape)}.`);
  }
  const backend = sameDevice(src, c, s);
  const buf = allocLike(backend, src.dtype, src.shape);
  backend.rope(src.buffer, c.buffer, s.buffer, tableBatchStride, batch, seq, heads, headDim, buf, false);
  return makeResult(buf, src.shape, 'rope', [src], (g) => {
    const gc = compact(g);
    const dx = allocLike(backend, src.dtype, src.shape);
    backend.rope(gc.buffer, c.buffer, s.buffer, tableBatchStride, batch, seq, heads, headDim, dx, true);
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
  const losses = backend.alloc('float32', rows);
  const lse = backend.alloc('float32', rows);
  backend.crossEntropy(lg.buffer, lb.buffer, rows, vocab, ignoreIndex, losses, lse);
  const valid = reshape(greater(lb, full([], ignoreIndex, { device: lg.device })), [rows]);
  const count = sum(valid);
  const mean = div(sum(makeResult(losses, [rows], 'crossEntropyRows', [], null)), count);
  return makeResult(mean.buffer, [], 'crossEntropy', [lg], (g) => {
    const scale = compact(div(mul(valid, g), count));
    const dl = allocLike(backend, lg.dtype, lg.shape);
    backend.crossEntropyBackward(lg.buffer, lse, lb.buffer, scale.buffer, rows, vocab, ignoreIndex, dl);
    return [makeResult(dl, lg.shape, 'crossEntropyBackward', [], null)];
  });
}

/**
 * Causal attention with grouped-query heads, composed from GEMMs and a softmax:
 * q [B, H, T, D], k/v [B, Hkv, S, D], H a multiple of Hkv; the T queries sit at the last T of the S key
 * positions. `mask` (optional, additive, broadcastable to [B, 1, T, S]) adds padding masks.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, scale: number, mask?: Tensor | null): Tensor {
  const [B, H, T, D] = q.shape as [number, number, number, number];
  const Hkv = k.shape[1]!;
  const S = k.shape[2]!;
  const groups = H / Hkv;
  if (!Number.isInteger(groups)) throw new Error(`${H} query heads are not a multiple of ${Hkv} key/value heads.`);
  // [B, Hkv, groups*T, D]: each KV head serves its group of query heads in one GEMM, no repeat_kv copy.
  const qg = reshape(compact(q), [B, Hkv, groups * T, D]);
  const scores = mulScalar(matmul(qg, transpose(k)), scale);
  // Masks take the scores' dtype so that a bf16 model stays bf16 (transformers builds them in the model dtype).
  const masked5 = add(reshape(scores, [B, Hkv, groups, T, S]), causalMask(T, S, q.device, scores.dtype));
  const withPad = mask ? add(masked5, reshape(to(mask, { dtype: scores.dtype }), [mask.shape[0]!, 1, 1, T, S])) : masked5;
  const probs = softmax(reshape(withPad, [B, Hkv, groups * T, S]));
  return reshape(matmul(probs, v), [B, H, T, D]);
}

const maskCache = new Map<string, Tensor>();

/** Additive causal mask [T, S]: query i (at key position S-T+i) sees keys 0..S-T+i. Cached per size. */
export function causalMask(T: number, S: number, device: string, dtype: DType = 'float32'): Tensor {
  const key = `${T}x${S}@${device}:${dtype}`;
  const hit = maskCache.get(key);
  if (hit && !hit.disposed) return hit;
  const values = new Float32Array(T * S);
  for (let i = 0; i < T; i++) for (let j = 0; j < S; j++) values[i * S + j] = j > S - T + i ? -Infinity : 0;
  const backend = backendOf(full([], 0, { device }));
  const t = makeResult(backend.fromHost(dtype, hostArray(dtype, values)), [T, S], 'causalMask', [], null).keep();
  if (maskCache.size > 64) maskCache.clear();
  maskCache.set(key, t);
  return t;
}
