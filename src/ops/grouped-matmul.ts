import type { Backend } from '../backend/backend.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { allocLike, makeResult, promote, sameDevice } from './engine.js';
import { compact } from './shape-ops.js';

/**
 * How each weight of a grouped GEMM is stored: 'out-in' [n, k] (nn.Linear's [out, in], as Mixtral's and
 * Qwen3-MoE's fused experts), multiplied transposed; 'in-out' [k, n] (gpt-oss's experts), multiplied as is.
 */
export type GroupedWeightLayout = 'out-in' | 'in-out';

/** One GEMM of a group: C rows [row, row + rows) from A's same rows and weight `group`. */
interface GroupGemm {
  readonly group: number;
  readonly row: number;
  readonly rows: number;
}

function groupGemms(groupSizes: readonly number[]): GroupGemm[] {
  const out: GroupGemm[] = [];
  let row = 0;
  groupSizes.forEach((rows, group) => {
    if (rows > 0) out.push({ group, row, rows });
    row += rows;
  });
  return out;
}

/** C [m, n] (at cOffset) = op(A) op(B) + beta C, every operand dense row-major. */
function gemm(backend: Backend, a: Tensor, aOffset: number, transA: boolean, b: Tensor, bOffset: number, transB: boolean, c: Tensor['buffer'], cOffset: number, m: number, n: number, k: number): void {
  backend.matmul({
    a: a.buffer, aOffset, b: b.buffer, bOffset, c, cOffset, m, n, k, transA, transB,
    lda: transA ? m : k, ldb: transB ? k : n, ldc: n, batch: 1, strideA: 0, strideB: 0, strideC: 0, alpha: 1, beta: 0,
  });
}

/**
 * The experts' GEMM of a mixture-of-experts layer: the rows of x [rows, k] come in contiguous groups, in order,
 * groupSizes[g] of them for group g, and group g's rows are multiplied by w[g] of w [groups, ...] (layout as
 * GroupedWeightLayout): y [rows, n]. One backend GEMM per non-empty group, forward and backward (dx per group;
 * dw per group, zero for a group without rows); the host loops over groups, never over rows.
 */
export function groupedMatmul(x: Tensor, w: Tensor, groupSizes: readonly number[], layout: GroupedWeightLayout): Tensor {
  if (x.rank !== 2 || w.rank !== 3) throw new Error(`groupedMatmul takes x [rows, k] and w [groups, ., .]; got ${formatShape(x.shape)} and ${formatShape(w.shape)}.`);
  const [rows, k] = x.shape as [number, number];
  const [groups, w1, w2] = w.shape as [number, number, number];
  const n = layout === 'out-in' ? w1 : w2;
  const wk = layout === 'out-in' ? w2 : w1;
  if (wk !== k) throw new Error(`groupedMatmul: x ${formatShape(x.shape)} has ${k} features but the ${layout} weights ${formatShape(w.shape)} take ${wk}.`);
  if (groupSizes.length !== groups) throw new Error(`groupedMatmul: ${groupSizes.length} group sizes for ${groups} weights.`);
  const total = groupSizes.reduce((s, g) => s + g, 0);
  if (total !== rows || groupSizes.some((g) => !Number.isInteger(g) || g < 0)) {
    throw new Error(`groupedMatmul: the group sizes [${groupSizes.join(', ')}] must be whole numbers adding up to the ${rows} rows of x.`);
  }
  const xc = compact(x);
  const wc = compact(w);
  const backend = sameDevice(xc, wc);
  const dtype = promote(xc, wc);
  const gemms = groupGemms(groupSizes);
  const trans = layout === 'out-in';
  const out = allocLike(backend, dtype, [rows, n]);
  for (const g of gemms) gemm(backend, xc, g.row * k, false, wc, g.group * n * k, trans, out, g.row * n, g.rows, n, k);
  return makeResult(out, [rows, n], 'groupedMatmul', [xc, wc], (dy) => {
    const g = compact(dy);
    let dx: Tensor | null = null;
    if (xc.requiresGrad) {
      const buf = allocLike(backend, dtype, [rows, k]);
      // dx rows of group g = dy_g op(w_g)^T: w_g [n, k] as stored ('out-in'), or [k, n] transposed.
      for (const q of gemms) gemm(backend, g, q.row * n, false, wc, q.group * n * k, !trans, buf, q.row * k, q.rows, k, n);
      dx = makeResult(buf, [rows, k], 'groupedMatmulBackward', [], null);
    }
    let dw: Tensor | null = null;
    if (wc.requiresGrad) {
      const buf = backend.alloc(wc.dtype, wc.numel);
      for (const q of gemms) {
        // 'out-in': dw_g [n, k] = dy_g^T x_g; 'in-out': dw_g [k, n] = x_g^T dy_g.
        if (trans) gemm(backend, g, q.row * n, true, xc, q.row * k, false, buf, q.group * n * k, n, k, q.rows);
        else gemm(backend, xc, q.row * k, true, g, q.row * n, false, buf, q.group * n * k, k, n, q.rows);
      }
      dw = makeResult(buf, wc.shape, 'groupedMatmulBackward', [], null);
    }
    return [dx, dw];
  });
}
