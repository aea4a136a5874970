/**
 * The paged KV cache on the CPU (PagedKvArgs in backend.ts). Writes copy each new key/value row into its block
 * slot. Attention runs the fused attention of one batch row at a time, reading that row's cached positions from
 * their blocks (cpuAttention's kvRows), so a decode step computes exactly what attention over a contiguous cache
 * would, and each row's result depends on that row alone. With a sliding window only the positions some query of
 * the step sees are read.
 */
import type { DeviceBuffer, HostArray } from '../../tensor/buffer.js';
import type { AttentionLayout, PagedAttentionArgs, PagedKvArgs, PagedKvWriteArgs } from '../backend.js';
import { cpuAttention, rowAt } from './attention.js';
import { allocHost, asCpu, CpuBuffer, readI32 } from './cpu-buffer.js';

/** Host views of the block table and lengths, after checking every entry the step will touch. */
function tables(a: PagedKvArgs, pools: readonly DeviceBuffer[]): { table: Int32Array; lengths: Int32Array } {
  const dtype = pools[0]!.dtype;
  if (dtype !== 'float32' && dtype !== 'bfloat16' && dtype !== 'float16') throw new Error(`the paged KV cache needs float pools, got ${dtype}.`);
  const poolSize = a.poolBlocks * a.kvHeads * a.blockSize * a.headDim;
  for (const p of pools) {
    if (p.dtype !== dtype) throw new Error(`paged KV operands must share one dtype, got ${pools.map((b) => b.dtype).join(', ')}.`);
  }
  for (const p of pools.slice(0, 2)) {
    if (p.length < poolSize) throw new RangeError(`a paged KV pool holds ${p.length} elements, fewer than ${a.poolBlocks} blocks need (${poolSize}).`);
  }
  const table = readI32(a.blockTable, 0, a.batch * a.maxBlocks);
  const lengths = readI32(a.lengths, 0, a.batch);
  for (let b = 0; b < a.batch; b++) {
    const n = lengths[b]!;
    if (n < a.seq || n > a.maxBlocks * a.blockSize) throw new RangeError(`paged KV row ${b} has length ${n}, outside ${a.seq}..${a.maxBlocks * a.blockSize}.`);
    for (let i = 0; i < Math.ceil(n / a.blockSize); i++) {
      const block = table[b * a.maxBlocks + i]!;
      if (block < 0 || block >= a.poolBlocks) throw new RangeError(`paged KV row ${b} names block ${block}, outside the pool's ${a.poolBlocks}.`);
    }
  }
  return { table, lengths };
}

/** Element offset of position p of kv head h in row b's blocks. */
function slotAt(a: PagedKvArgs, table: Int32Array, b: number, h: number, p: number): number {
  const block = table[b * a.maxBlocks + Math.floor(p / a.blockSize)]!;
  return ((block * a.kvHeads + h) * a.blockSize + (p % a.blockSize)) * a.headDim;
}

/** Copies n elements between two host arrays of one dtype (checked by tables()). */
function copyElements(src: HostArray, from: number, dst: HostArray, to: number, n: number): void {
  (dst as Float32Array).set((src as Float32Array).subarray(from, from + n), to);
}

export function cpuPagedKvWrite(k: DeviceBuffer, v: DeviceBuffer, kPool: DeviceBuffer, vPool: DeviceBuffer, a: PagedKvWriteArgs): void {
  const { table, lengths } = tables(a, [kPool, vPool, k, v]);
  const D = a.headDim;
  const pairs: [HostArray, AttentionLayout, HostArray][] = [
    [asCpu(k).data, a.k, asCpu(kPool).data],
    [asCpu(v).data, a.v, asCpu(vPool).data],
  ];
  for (let b = 0; b < a.batch; b++) {
    for (let t = 0; t < a.seq; t++) {
      const p = lengths[b]! - a.seq + t;
      for (let h = 0; h < a.kvHeads; h++) {
        const dst = slotAt(a, table, b, h, p);
        for (const [src, layout, pool] of pairs) {
          const from = rowAt(layout, b, h, t);
          copyElements(src, from, pool, dst, D);
        }
      }
    }
  }
}

/** `invariant`: the backend's batch-invariant mode (cpuAttention's). */
export function cpuPagedAttention(q: DeviceBuffer, kPool: DeviceBuffer, vPool: DeviceBuffer, out: DeviceBuffer, a: PagedAttentionArgs, invariant = false): void {
  const { table, lengths } = tables(a, [kPool, vPool, q, out]);
  const lse = new CpuBuffer('float32', a.heads * a.seq, allocHost('float32', a.heads * a.seq));
  for (let b = 0; b < a.batch; b++) {
    // This row's cached positions are read where they lie in the pools (kvRows places them; the k and v layouts
    // below go unused).
    cpuAttention(q, kPool, vPool, out, lse, {
      batch: 1, heads: a.heads, kvHeads: a.kvHeads, seqQ: a.seq, seqK: lengths[b]!, headDim: a.headDim, scale: a.scale, causal: true, window: a.window, softcap: a.softcap, sinks: a.sinks ?? null,
      q: { ...a.q, offset: a.q.offset + b * a.q.batchStride },
      k: PLACED_ROWS,
      v: PLACED_ROWS,
      out: { ...a.out, offset: a.out.offset + b * a.out.batchStride },
      keyMask: null,
    }, (h, p) => slotAt(a, table, b, h, p), invariant);
  }
}

/** The k and v layouts cpuPagedAttention hands cpuAttention, which reads their rows through kvRows instead. */
const PLACED_ROWS = { offset: 0, batchStride: 0, headStride: 0, rowStride: 0 } as const;
