import type { MultiLoraArgs, MultiLoraOutput } from '../backend.js';
import { commitF32, readF32, writableF32 } from './cpu-buffer.js';
import { sgemm, sgemv } from './gemm.js';

/**
 * MultiLoraArgs on the CPU, reading every adapter's weights where they live. Rows go in runs of consecutive rows
 * that name the same adapter (the scheduler sorts a batch by adapter, and a prompt's positions share one): a run
 * of several rows is two GEMMs (SGMV: h = x A^T into a float32 scratch [rows, rank], then out += scale * h B^T),
 * a run of one row two matrix-vector products (BGMV).
 * With `rowByRow` every row is a run of its own, so its products are the same calls (sgemv's) whatever else is in
 * the batch: how the batch-invariant mode keeps this kernel invariant when the GEMM is a BLAS whose bits depend
 * on m (gemm.ts, sgemmBatchInvariant).
 */
export function cpuMultiLora(p: MultiLoraArgs, rowByRow: boolean): void {
  const x = readF32(p.x, p.xOffset, p.rows * p.inFeatures);
  for (const o of p.outputs) projection(p.rows, p.inFeatures, x, o, rowByRow);
}

function projection(rows: number, k: number, x: Float32Array, o: MultiLoraOutput, rowByRow: boolean): void {
  const n = o.outFeatures;
  if (o.rowAdapter.length !== rows) throw new RangeError(`multiLora: ${o.rowAdapter.length} row adapters for ${rows} rows.`);
  const base = readF32(o.base, o.baseOffset, rows * n);
  const out = writableF32(o.out, 0, rows * n);
  if (out.buffer !== base.buffer || out.byteOffset !== base.byteOffset) out.set(base);
  /** Each adapter in use as float32, widened once per call when it is stored in 16 bits. */
  const weights = new Map<number, { a: Float32Array; b: Float32Array }>();
  let h: Float32Array = new Float32Array(0);
  for (let start = 0; start < rows; ) {
    const slot = o.rowAdapter[start]!;
    let end = start + 1;
    if (!rowByRow) while (end < rows && o.rowAdapter[end] === slot) end++;
    if (slot !== -1) {
      const adapter = o.adapters[slot];
      if (!adapter) throw new RangeError(`multiLora: row ${start} names adapter ${slot}, but ${o.adapters.length} were given.`);
      const r = adapter.rank;
      let w = weights.get(slot);
      if (!w) {
        w = { a: readF32(adapter.a, adapter.aOffset, r * k), b: readF32(adapter.b, adapter.bOffset, n * r) };
        weights.set(slot, w);
      }
      const count = end - start;
      if (h.length < count * r) h = new Float32Array(new SharedArrayBuffer(4 * count * r));
      if (count === 1) {
        sgemv({ rows: r, cols: k, trans: false, a: w.a, aOffset: 0, lda: k, x, xOffset: start * k, y: h, yOffset: 0, alpha: 1, beta: 0 });
        sgemv({ rows: n, cols: r, trans: false, a: w.b, aOffset: 0, lda: r, x: h, xOffset: 0, y: out, yOffset: start * n, alpha: adapter.scale, beta: 1 });
      } else {
        sgemm({
          m: count, n: r, k, transA: false, transB: true, a: x, aOffset: start * k, lda: k, b: w.a, bOffset: 0, ldb: k,
          c: h, cOffset: 0, ldc: r, alpha: 1, beta: 0, batch: 1, strideA: 0, strideB: 0, strideC: 0,
        });
        sgemm({
          m: count, n, k: r, transA: false, transB: true, a: h, aOffset: 0, lda: r, b: w.b, bOffset: 0, ldb: r,
          c: out, cOffset: start * n, ldc: n, alpha: adapter.scale, beta: 1, batch: 1, strideA: 0, strideB: 0, strideC: 0,
        });
      }
    }
    start = end;
  }
  commitF32(o.out, 0, out);
}
