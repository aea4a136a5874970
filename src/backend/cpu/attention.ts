/**
 * Fused attention on the CPU, forward and backward, one (batch, key/value head) at a time.
 *
 *   r_ij  = scale * q_i . k_j                                   (the raw scaled score)
 *   c_ij  = softcap * tanh(r_ij / softcap), or r_ij when softcap = 0
 *   s_ij  = c_ij + mask_j      (-inf where causality, the window or the mask hides key j)
 *   lse_i = log (sum_j exp(s_ij) + exp(sink_h)),   p_ij = exp(s_ij - lse_i),   o_i = sum_j p_ij v_j
 *           (sink_h: head h's attention-sink logit, or -inf without sinks; the sink has no value row, and since
 *           sum_j p_ij dP_ij is still dO_i . o_i the backward below holds unchanged)
 *   D_i   = dO_i . o_i,   ds_ij = p_ij (dO_i . v_j - D_i)             (dL/ds_ij = dL/dc_ij)
 *   dr_ij = ds_ij * dc/dr = ds_ij (1 - tanh^2(r_ij / softcap)) = ds_ij (1 - (c_ij / softcap)^2), or ds_ij
 *   dq_i  = scale * sum_j dr_ij k_j,   dk_j = scale * sum_i dr_ij q_i,   dv_j = sum_i p_ij dO_i
 *
 * Query i sits at key position p = seqK - seqQ + i; causality hides keys j > p, a window > 0 keys with
 * p - j >= window. Queries go in blocks of QUERY_BLOCK positions times the heads of one group (they share k and
 * v), so a block holds [rows, keys it can see] scores, from the first key its first query sees to the last its
 * last query sees, and never [seqQ, seqK]: keys that a window leaves behind every query of a block are never
 * touched (nor loaded when no query at all sees them). Its products run through sgemm (OpenBLAS or the threaded
 * TypeScript GEMM). A block's softmax is exact (its whole score row is present), in float64.
 * The backward recomputes P from lse; dk and dv accumulate in float32 over the group's heads and blocks.
 * Scratch arrays are allocated once per call.
 */
import { bf16ArrayToF32, f16ArrayToF32, f32ArrayToBf16, f32ArrayToF16 } from '../../tensor/dtype.js';
import type { DeviceBuffer } from '../../tensor/buffer.js';
import type { AttentionArgs, AttentionBackwardArgs, AttentionLayout } from '../backend.js';
import { asCpu, readF32 } from './cpu-buffer.js';
import { sgemm, sgemmBuiltIn } from './gemm.js';

const QUERY_BLOCK = 64;

/**
 * What ops/ cannot see from tensors: the buffers' dtypes as they reach the kernel. The shape rules (heads a multiple
 * of kvHeads, causal needing seqQ <= seqK, float operands) are checked once in ops/nn-ops.ts for every backend.
 */
function checkArgs(a: AttentionArgs, buffers: readonly DeviceBuffer[]): void {
  const dtype = buffers[0]!.dtype;
  if (buffers.some((b) => b.dtype !== dtype)) throw new Error(`attention operands must share one dtype, got ${buffers.map((b) => b.dtype).join(', ')}.`);
  if (a.keyMask && a.keyMask.dtype !== 'float32') throw new Error(`the attention key mask must be float32, got ${a.keyMask.dtype}.`);
}

/** Element offset of row `row` of (batch b, head h) in an operand. */
export function rowAt(l: AttentionLayout, b: number, h: number, row: number): number {
  return l.offset + b * l.batchStride + h * l.headStride + row * l.rowStride;
}

/** `count` rows of D elements, row r at element offsetOf(r) of buf, widened into dst from row `dstRow` (D per row). */
function gatherRowsAt(buf: DeviceBuffer, offsetOf: (r: number) => number, count: number, D: number, dst: Float32Array, dstRow: number): void {
  const c = asCpu(buf);
  for (let r = 0; r < count; r++) {
    const o = offsetOf(r);
    const target = dst.subarray((dstRow + r) * D, (dstRow + r + 1) * D);
    if (c.dtype === 'float32') target.set((c.data as Float32Array).subarray(o, o + D));
    else if (c.dtype === 'bfloat16') bf16ArrayToF32((c.data as Uint16Array).subarray(o, o + D), target);
    else f16ArrayToF32((c.data as Uint16Array).subarray(o, o + D), target);
  }
}

/** `count` rows of D elements from `first`, `stride` apart, widened into dst from row `dstRow` (D per row). */
function gatherRows(buf: DeviceBuffer, first: number, stride: number, count: number, D: number, dst: Float32Array, dstRow: number): void {
  gatherRowsAt(buf, (r) => first + r * stride, count, D, dst, dstRow);
}

/** The inverse of gatherRows: rounds rows of src into the buffer's dtype. */
function scatterRows(src: Float32Array, srcRow: number, count: number, D: number, buf: DeviceBuffer, first: number, stride: number): void {
  const c = asCpu(buf);
  for (let r = 0; r < count; r++) {
    const o = first + r * stride;
    const from = src.subarray((srcRow + r) * D, (srcRow + r + 1) * D);
    if (c.dtype === 'float32') (c.data as Float32Array).set(from, o);
    else if (c.dtype === 'bfloat16') f32ArrayToBf16(from, (c.data as Uint16Array).subarray(o, o + D));
    else f32ArrayToF16(from, (c.data as Uint16Array).subarray(o, o + D));
  }
}

/** Element offsets into B and C of gemm (0 when absent). */
interface GemmOffsets {
  readonly b?: number;
  readonly c?: number;
}

/** Row-major product C = alpha * op(A) op(B) + beta * C of single matrices. */
function gemm(m: number, n: number, k: number, a: Float32Array, lda: number, transA: boolean, b: Float32Array, ldb: number, transB: boolean, c: Float32Array, ldc: number, alpha: number, beta: number, at: GemmOffsets = {}, invariant = false): void {
  (invariant ? sgemmBuiltIn : sgemm)({ m, n, k, transA, transB, a, aOffset: 0, lda, b, bOffset: at.b ?? 0, ldb, c, cOffset: at.c ?? 0, ldc, alpha, beta, batch: 1, strideA: 0, strideB: 0, strideC: 0 });
}

/** The first key query i sees: 0, or the window's first position. */
function firstKey(a: AttentionArgs, i: number): number {
  return a.window > 0 ? Math.max(0, a.seqK - a.seqQ + i - a.window + 1) : 0;
}

/**
 * One block of queries: positions i0 .. i0+n-1 for each of the G heads of a group, as rows g*n + r. Query i0 + r
 * sees keys firsts[r] .. limits[r] - 1; the block's scores cover keys start .. end - 1 (width = end - start), the
 * union of those ranges.
 */
interface QueryBlock {
  readonly i0: number;
  readonly n: number;
  readonly start: number;
  readonly end: number;
  readonly width: number;
  readonly firsts: Int32Array;
  readonly limits: Int32Array;
}

function* queryBlocks(a: AttentionArgs): Generator<QueryBlock> {
  const firsts = new Int32Array(QUERY_BLOCK);
  const limits = new Int32Array(QUERY_BLOCK);
  for (let i0 = 0; i0 < a.seqQ; i0 += QUERY_BLOCK) {
    const n = Math.min(QUERY_BLOCK, a.seqQ - i0);
    for (let r = 0; r < n; r++) {
      firsts[r] = firstKey(a, i0 + r);
      limits[r] = a.causal ? a.seqK - a.seqQ + i0 + r + 1 : a.seqK;
    }
    const start = firsts[0]!, end = limits[n - 1]!;
    yield { i0, n, start, end, width: end - start, firsts, limits };
  }
}

/** Scratch for one (batch, key/value head): its keys and values, and a block's rows and scores. */
class Workspace {
  readonly keys: Float32Array;
  readonly values: Float32Array;
  readonly queries: Float32Array;
  readonly scores: Float32Array;
  constructor(readonly a: AttentionArgs) {
    const G = a.heads / a.kvHeads;
    this.keys = new Float32Array(a.seqK * a.headDim);
    this.values = new Float32Array(a.seqK * a.headDim);
    this.queries = new Float32Array(G * QUERY_BLOCK * a.headDim);
    this.scores = new Float32Array(G * QUERY_BLOCK * a.seqK);
  }

  /**
   * Key/value head hk of batch b: from a.k and a.v, or, given kvRows, from the rows it places (both operands).
   * Keys before the first one any query sees (the window's) are left out; their rows are never read.
   */
  loadKeysValues(k: DeviceBuffer, v: DeviceBuffer, b: number, hk: number, kvRows?: KvRows): void {
    const { a } = this;
    const lo = firstKey(a, 0), count = a.seqK - lo;
    if (kvRows) {
      gatherRowsAt(k, (p) => kvRows(hk, lo + p), count, a.headDim, this.keys, lo);
      gatherRowsAt(v, (p) => kvRows(hk, lo + p), count, a.headDim, this.values, lo);
      return;
    }
    gatherRows(k, rowAt(a.k, b, hk, lo), a.k.rowStride, count, a.headDim, this.keys, lo);
    gatherRows(v, rowAt(a.v, b, hk, lo), a.v.rowStride, count, a.headDim, this.values, lo);
  }

  /** The block's rows of a [B, heads, T, D] operand into dst, head after head. */
  loadRows(buf: DeviceBuffer, l: AttentionLayout, b: number, hk: number, blk: QueryBlock, dst: Float32Array): void {
    const G = this.a.heads / this.a.kvHeads;
    for (let g = 0; g < G; g++) gatherRows(buf, rowAt(l, b, hk * G + g, blk.i0), l.rowStride, blk.n, this.a.headDim, dst, g * blk.n);
  }

  storeRows(src: Float32Array, buf: DeviceBuffer, l: AttentionLayout, b: number, hk: number, blk: QueryBlock): void {
    const G = this.a.heads / this.a.kvHeads;
    for (let g = 0; g < G; g++) scatterRows(src, g * blk.n, blk.n, this.a.headDim, buf, rowAt(l, b, hk * G + g, blk.i0), l.rowStride);
  }

  /**
   * scores [G*n, width] = scale * Q K^T over keys blk.start .. blk.end - 1 (row stride `width`), soft-capped
   * where each query sees its key when a.softcap > 0: the block's scores before the mask (c_ij).
   */
  computeScores(blk: QueryBlock, invariant = false): void {
    const { a } = this;
    const rows = (a.heads / a.kvHeads) * blk.n;
    gemm(rows, blk.width, a.headDim, this.queries, a.headDim, false, this.keys, a.headDim, true, this.scores, blk.width, a.scale, 0, { b: blk.start * a.headDim }, invariant);
    const cap = a.softcap;
    if (cap === 0) return;
    const p = this.scores;
    for (let row = 0; row < rows; row++) {
      const base = row * blk.width - blk.start;
      const r = row % blk.n;
      for (let j = blk.firsts[r]!; j < blk.limits[r]!; j++) p[base + j] = cap * Math.tanh(p[base + j]! / cap);
    }
  }
}

/**
 * Where position p of key/value head hk starts (an element offset) in both the key and the value buffer, for
 * operands that are not strided, such as a paged KV pool (cpuPagedAttention); a.k and a.v go unused then.
 */
export type KvRows = (hk: number, p: number) => number;

/**
 * `invariant` (the backend's batch-invariant mode): the block products run on the built-in kernel even where a
 * CBLAS library is loaded, so each query's output is the same bits whichever queries share its block.
 */
export function cpuAttention(q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, out: DeviceBuffer, lse: DeviceBuffer, a: AttentionArgs, kvRows?: KvRows, invariant = false): void {
  checkArgs(a, [q, k, v, out]);
  if (kvRows && a.batch !== 1) throw new Error(`attention with placed key/value rows takes one batch row, got ${a.batch}.`);
  const { batch: B, heads: H, kvHeads: Hkv, seqQ: T, seqK: S, headDim: D } = a;
  const G = H / Hkv;
  const ws = new Workspace(a);
  const outRows = new Float32Array(G * QUERY_BLOCK * D);
  const lseOut = asCpu(lse).data as Float32Array;
  const mask = a.keyMask ? readF32(a.keyMask, 0, B * S) : null;
  const sinks = a.sinks ? readF32(a.sinks, 0, H) : null;
  for (let b = 0; b < B; b++) {
    for (let hk = 0; hk < Hkv; hk++) {
      ws.loadKeysValues(k, v, b, hk, kvRows);
      for (const blk of queryBlocks(a)) {
        const { n, start, width } = blk;
        ws.loadRows(q, a.q, b, hk, blk, ws.queries);
        ws.computeScores(blk, invariant);
        const p = ws.scores;
        for (let row = 0; row < G * n; row++) {
          const r = row % n;
          // p[base + j] is key j's score; the row holds keys start .. end - 1.
          const base = row * width - start;
          const first = blk.firsts[r]!, lim = blk.limits[r]!;
          // A sink joins the max and the normaliser (so lse, from which the backward recomputes P, includes it).
          const sink = sinks ? sinks[hk * G + Math.floor(row / n)]! : -Infinity;
          let mx = sink;
          for (let j = first; j < lim; j++) {
            const x = mask ? p[base + j]! + mask[b * S + j]! : p[base + j]!;
            p[base + j] = x;
            if (x > mx) mx = x;
          }
          let sum = 0;
          if (mx !== -Infinity) {
            for (let j = first; j < lim; j++) {
              const e = Math.exp(p[base + j]! - mx);
              p[base + j] = e;
              sum += e;
            }
            if (sinks) sum += Math.exp(sink - mx);
            const inv = 1 / sum;
            for (let j = first; j < lim; j++) p[base + j] = p[base + j]! * inv;
            p.fill(0, base + start, base + first);
            p.fill(0, base + lim, base + start + width);
          } else {
            p.fill(0, base + start, base + start + width);
          }
          lseOut[(b * H + hk * G + Math.floor(row / n)) * T + blk.i0 + r] = sum > 0 ? mx + Math.log(sum) : -Infinity;
        }
        gemm(G * n, D, width, p, width, false, ws.values, D, false, outRows, D, 1, 0, { b: start * D }, invariant);
        ws.storeRows(outRows, out, a.out, b, hk, blk);
      }
    }
  }
}

export function cpuAttentionBackward(
  q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, out: DeviceBuffer, lse: DeviceBuffer, dout: DeviceBuffer,
  dq: DeviceBuffer, dk: DeviceBuffer, dv: DeviceBuffer, a: AttentionBackwardArgs,
): void {
  checkArgs(a, [q, k, v, out, dout, dq, dk, dv]);
  const { batch: B, heads: H, kvHeads: Hkv, seqQ: T, seqK: S, headDim: D, scale, softcap } = a;
  const G = H / Hkv;
  const ws = new Workspace(a);
  const grads = new Float32Array(G * QUERY_BLOCK * D);
  const outs = new Float32Array(G * QUERY_BLOCK * D);
  const dScores = new Float32Array(G * QUERY_BLOCK * S);
  const dKeys = new Float32Array(S * D);
  const dValues = new Float32Array(S * D);
  const lseIn = readF32(lse, 0, B * H * T);
  const mask = a.keyMask ? readF32(a.keyMask, 0, B * S) : null;
  for (let b = 0; b < B; b++) {
    for (let hk = 0; hk < Hkv; hk++) {
      ws.loadKeysValues(k, v, b, hk);
      dKeys.fill(0);
      dValues.fill(0);
      for (const blk of queryBlocks(a)) {
        const { n, start, width } = blk;
        ws.loadRows(q, a.q, b, hk, blk, ws.queries);
        ws.loadRows(dout, a.dout, b, hk, blk, grads);
        ws.loadRows(out, a.out, b, hk, blk, outs);
        ws.computeScores(blk);
        // dP = dO V^T, then P from lse and dR = scale * P (dP - D) (times the soft-cap's 1 - (c / softcap)^2)
        // in place of it.
        gemm(G * n, width, D, grads, D, false, ws.values, D, true, dScores, width, 1, 0, { b: start * D });
        const p = ws.scores;
        for (let row = 0; row < G * n; row++) {
          const base = row * width - start;
          const L = lseIn[(b * H + hk * G + Math.floor(row / n)) * T + blk.i0 + (row % n)]!;
          const first = L === -Infinity ? start : blk.firsts[row % n]!;
          const lim = L === -Infinity ? start : blk.limits[row % n]!;
          let Di = 0;
          for (let d = 0; d < D; d++) Di += grads[row * D + d]! * outs[row * D + d]!;
          for (let j = first; j < lim; j++) {
            const c = p[base + j]!;
            const pj = Math.exp((mask ? c + mask[b * S + j]! : c) - L);
            p[base + j] = pj;
            const ds = pj * (dScores[base + j]! - Di);
            dScores[base + j] = (softcap > 0 ? ds * (1 - (c / softcap) * (c / softcap)) : ds) * scale;
          }
          for (const m of [p, dScores]) {
            m.fill(0, base + start, base + first);
            m.fill(0, base + lim, base + start + width);
          }
        }
        // dQ = dR K, dK += dR^T Q, dV += P^T dO over the block's keys (the block's rows head after head share one
        // product).
        gemm(G * n, D, width, dScores, width, false, ws.keys, D, false, outs, D, 1, 0, { b: start * D });
        ws.storeRows(outs, dq, a.dq, b, hk, blk);
        gemm(width, D, G * n, dScores, width, true, ws.queries, D, false, dKeys, D, 1, 1, { c: start * D });
        gemm(width, D, G * n, p, width, true, grads, D, false, dValues, D, 1, 1, { c: start * D });
      }
      scatterRows(dKeys, 0, S, D, dk, rowAt(a.dk, b, hk, 0), a.dk.rowStride);
      scatterRows(dValues, 0, S, D, dv, rowAt(a.dv, b, hk, 0), a.dv.rowStride);
    }
  }
}
