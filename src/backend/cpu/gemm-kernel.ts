import type { SgemmArgs } from './gemm.js';

/**
 * The pure-TypeScript SGEMM: GotoBLAS-style blocking around a register-tiled micro-kernel.
 *
 * For each block of NC columns of C, for each depth block of KC, a KC x NC slab of op(B) is packed into
 * NR-wide micro-panels; then for each block of MC rows, an MC x KC slab of op(A) is packed into MR-high
 * micro-panels, and the micro-kernel computes every MR x NR tile of C from one A and one B micro-panel,
 * with the 16 accumulators held in local variables. Packing makes the kernel's reads sequential whatever
 * the transposes and leading dimensions are, and pads ragged edges with zeros so the kernel has one shape.
 *
 * Packed panels are float64: JavaScript arithmetic is float64, so converting once while packing takes a
 * float32->float64 conversion out of the inner loop (each packed value is read n/NR or m/MR times).
 * Products are accumulated in float64 over a depth block and rounded to float32 when stored into C.
 *
 * Invariant: element (i, j) of C is the same sequence of float operations on row i of op(A), column j of op(B)
 * and C[i][j] whatever m, n, the other rows' values, the split into units and threads, and the path (packed or
 * row-wise) are. Depth blocks always start at multiples of KC and every path rounds into C at the same points,
 * so a row's result never depends on what else is in its batch.
 */

/**
 * Rows and columns of the register tile. Exported under other names: V8 reloads and hole-checks an
 * exported module binding at every use, even in optimised loops, but folds a private const into the code.
 */
const MR = 4;
const NR = 4;
export const TILE_ROWS = MR;
export const TILE_COLS = NR;
/** Depth of a packed block: a KC x NR micro-panel of B (8 KiB) stays in L1 while the kernel sweeps A. */
const KC = 256;
/** Rows of A packed at a time: MC x KC float64 (256 KiB) stays in L2. */
const MC = 128;
/** Columns of B packed at a time (KC x NC float64, 2 MiB, lives in L2/L3). */
const NC = 1024;

/** Per-thread scratch: packed A block, packed B block, and a tile for ragged edges. */
export class GemmWorkspace {
  readonly packedA = new Float64Array(MC * KC);
  readonly packedB = new Float64Array(KC * NC);
  readonly edgeTile = new Float32Array(MR * NR);
  /** One row of op(A) (k values) and one row of float64 sums (n values) for the row-wise path; grown on demand. */
  rowA = new Float64Array(0);
  rowSums = new Float64Array(0);
}

/**
 * Blocks with fewer rows than this skip packing and go row by row (gemmRows): packing B costs k n copies,
 * which a block of m rows only amortises over m / MR kernel passes. Measured on n = 1408, k = 512, both
 * layouts of B: row-wise holds ~2.1-2.4 GFLOP/s for any m, packed climbs from 0.35 (m = 1) through 1.4
 * (m = 4) to 1.9-2.3 (m = 8) and passes row-wise from m = 12.
 */
const ROWWISE_MAX_ROWS = 8;

/**
 * C[item][i0:i1, j0:j1] = alpha * op(A[item]) @ op(B[item]) restricted to those rows and columns + beta * C.
 * Blocks of one problem that do not overlap in C may run concurrently on different threads.
 */
export function gemmBlock(p: SgemmArgs, item: number, i0: number, i1: number, j0: number, j1: number, ws: GemmWorkspace): void {
  const aBase = p.aOffset + item * p.strideA;
  const bBase = p.bOffset + item * p.strideB;
  const cBase = p.cOffset + item * p.strideC;
  if (p.k === 0 || p.alpha === 0) {
    scaleBlock(p.c, cBase, p.ldc, i0, i1, j0, j1, p.beta);
    return;
  }
  if (i1 - i0 < ROWWISE_MAX_ROWS) {
    gemmRows(p, aBase, bBase, cBase, i0, i1, j0, j1, ws);
    return;
  }
  for (let jc = j0; jc < j1; jc += NC) {
    const nc = Math.min(NC, j1 - jc);
    for (let pc = 0; pc < p.k; pc += KC) {
      const kc = Math.min(KC, p.k - pc);
      if (p.transB) packBTransposed(p.b, bBase, p.ldb, pc, kc, jc, nc, ws.packedB);
      else packB(p.b, bBase, p.ldb, pc, kc, jc, nc, ws.packedB);
      // Later depth blocks accumulate onto what the first one stored.
      const beta = pc === 0 ? p.beta : 1;
      for (let ic = i0; ic < i1; ic += MC) {
        const mc = Math.min(MC, i1 - ic);
        if (p.transA) packATransposed(p.a, aBase, p.lda, ic, mc, pc, kc, ws.packedA);
        else packA(p.a, aBase, p.lda, ic, mc, pc, kc, ws.packedA);
        macroKernel(mc, nc, kc, ws, p.c, cBase + ic * p.ldc + jc, p.ldc, p.alpha, beta);
      }
    }
  }
}

/**
 * Row-wise product for short blocks: each row of op(A) is widened into ws.rowA, then either dotted with four
 * rows of B at a time (op(B) = B^T: C[i][j] = rowA . B[j]) or used to accumulate four rows of B at a time
 * into ws.rowSums (op(B) = B: C[i] = sum_p rowA[p] * B[p]).
 * The arithmetic is the packed path's, element for element: depth blocks of KC, products summed in float64 in
 * depth order from -0 (the exact identity of +, as the micro-kernel's first product is), alpha * sum + beta * C
 * rounded into C after each block with beta = 1 after the first. So an element's bits never depend on which
 * path, unit or thread computed it, nor on m (what makes serving's decode steps batch-invariant).
 */
function gemmRows(p: SgemmArgs, aBase: number, bBase: number, cBase: number, i0: number, i1: number, j0: number, j1: number, ws: GemmWorkspace): void {
  const { k, a, b, c, lda, ldb, alpha } = p;
  if (ws.rowA.length < k) ws.rowA = new Float64Array(k);
  const row = ws.rowA;
  const width = j1 - j0;
  if (!p.transB && ws.rowSums.length < width) ws.rowSums = new Float64Array(width);
  const sums = ws.rowSums;
  for (let i = i0; i < i1; i++) {
    if (p.transA) for (let q = 0; q < k; q++) row[q] = a[aBase + q * lda + i]!;
    else for (let q = 0, src = aBase + i * lda; q < k; q++) row[q] = a[src + q]!;
    const cRow = cBase + i * p.ldc;
    for (let pc = 0; pc < k; pc += KC) {
      const end = Math.min(k, pc + KC);
      const beta = pc === 0 ? p.beta : 1;
      if (p.transB) {
        let j = j0;
        for (; j + 4 <= j1; j += 4) {
          const b0 = bBase + j * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb;
          let s0 = -0, s1 = -0, s2 = -0, s3 = -0;
          for (let q = pc; q < end; q++) {
            const x = row[q]!;
            s0 += x * b[b0 + q]!;
            s1 += x * b[b1 + q]!;
            s2 += x * b[b2 + q]!;
            s3 += x * b[b3 + q]!;
          }
          storeScaled(c, cRow + j, s0, alpha, beta);
          storeScaled(c, cRow + j + 1, s1, alpha, beta);
          storeScaled(c, cRow + j + 2, s2, alpha, beta);
          storeScaled(c, cRow + j + 3, s3, alpha, beta);
        }
        for (; j < j1; j++) {
          const b0 = bBase + j * ldb;
          let s0 = -0;
          for (let q = pc; q < end; q++) s0 += row[q]! * b[b0 + q]!;
          storeScaled(c, cRow + j, s0, alpha, beta);
        }
      } else {
        sums.fill(-0, 0, width);
        let q = pc;
        // Left to right: ((((sum + p0) + p1) + p2) + p3), the depth order of the micro-kernel.
        for (; q + 4 <= end; q += 4) {
          const x0 = row[q]!, x1 = row[q + 1]!, x2 = row[q + 2]!, x3 = row[q + 3]!;
          const r0 = bBase + q * ldb + j0, r1 = r0 + ldb, r2 = r1 + ldb, r3 = r2 + ldb;
          for (let j = 0; j < width; j++) sums[j] = sums[j]! + x0 * b[r0 + j]! + x1 * b[r1 + j]! + x2 * b[r2 + j]! + x3 * b[r3 + j]!;
        }
        for (; q < end; q++) {
          const x0 = row[q]!;
          const r0 = bBase + q * ldb + j0;
          for (let j = 0; j < width; j++) sums[j] = sums[j]! + x0 * b[r0 + j]!;
        }
        for (let j = 0; j < width; j++) storeScaled(c, cRow + j0 + j, sums[j]!, alpha, beta);
      }
    }
  }
}

function storeScaled(c: Float32Array, at: number, sum: number, alpha: number, beta: number): void {
  c[at] = beta === 0 ? alpha * sum : alpha * sum + beta * c[at]!;
}

/** C = beta * C over a block; beta = 0 writes zeros whatever C held (NaN included). */
function scaleBlock(c: Float32Array, cBase: number, ldc: number, i0: number, i1: number, j0: number, j1: number, beta: number): void {
  for (let i = i0; i < i1; i++) {
    const row = cBase + i * ldc;
    if (beta === 0) c.fill(0, row + j0, row + j1);
    else if (beta !== 1) for (let j = row + j0; j < row + j1; j++) c[j] = beta * c[j]!;
  }
}

/**
 * op(A) = A (row-major, element (i, p) at base + i * lda + p). Writes ceil(mc / MR) micro-panels, each
 * kc x MR with element (p, r) at panel * MR * kc + p * MR + r; rows past mc are zero.
 */
function packA(a: Float32Array, base: number, lda: number, i0: number, mc: number, p0: number, kc: number, out: Float64Array): void {
  for (let ip = 0; ip < mc; ip += MR) {
    const panel = ip * kc;
    const rows = Math.min(MR, mc - ip);
    for (let r = 0; r < rows; r++) {
      const src = base + (i0 + ip + r) * lda + p0;
      for (let p = 0; p < kc; p++) out[panel + p * MR + r] = a[src + p]!;
    }
    for (let r = rows; r < MR; r++) for (let p = 0; p < kc; p++) out[panel + p * MR + r] = 0;
  }
}

/** op(A) = A^T: element (i, p) of op(A) at base + p * lda + i. Same packed layout as packA. */
function packATransposed(a: Float32Array, base: number, lda: number, i0: number, mc: number, p0: number, kc: number, out: Float64Array): void {
  for (let ip = 0; ip < mc; ip += MR) {
    const panel = ip * kc;
    const rows = Math.min(MR, mc - ip);
    for (let p = 0; p < kc; p++) {
      const src = base + (p0 + p) * lda + i0 + ip;
      const dst = panel + p * MR;
      if (rows === MR) {
        out[dst] = a[src]!;
        out[dst + 1] = a[src + 1]!;
        out[dst + 2] = a[src + 2]!;
        out[dst + 3] = a[src + 3]!;
      } else {
        for (let r = 0; r < rows; r++) out[dst + r] = a[src + r]!;
        for (let r = rows; r < MR; r++) out[dst + r] = 0;
      }
    }
  }
}

/**
 * op(B) = B (row-major, element (p, j) at base + p * ldb + j). Writes ceil(nc / NR) micro-panels, each
 * kc x NR with element (p, c) at panel * NR * kc + p * NR + c; columns past nc are zero.
 */
function packB(b: Float32Array, base: number, ldb: number, p0: number, kc: number, j0: number, nc: number, out: Float64Array): void {
  for (let jp = 0; jp < nc; jp += NR) {
    const panel = jp * kc;
    const cols = Math.min(NR, nc - jp);
    for (let p = 0; p < kc; p++) {
      const src = base + (p0 + p) * ldb + j0 + jp;
      const dst = panel + p * NR;
      if (cols === NR) {
        out[dst] = b[src]!;
        out[dst + 1] = b[src + 1]!;
        out[dst + 2] = b[src + 2]!;
        out[dst + 3] = b[src + 3]!;
      } else {
        for (let c = 0; c < cols; c++) out[dst + c] = b[src + c]!;
        for (let c = cols; c < NR; c++) out[dst + c] = 0;
      }
    }
  }
}

/** op(B) = B^T: element (p, j) of op(B) at base + j * ldb + p. Same packed layout as packB. */
function packBTransposed(b: Float32Array, base: number, ldb: number, p0: number, kc: number, j0: number, nc: number, out: Float64Array): void {
  for (let jp = 0; jp < nc; jp += NR) {
    const panel = jp * kc;
    const cols = Math.min(NR, nc - jp);
    for (let c = 0; c < cols; c++) {
      const src = base + (j0 + jp + c) * ldb + p0;
      for (let p = 0; p < kc; p++) out[panel + p * NR + c] = b[src + p]!;
    }
    for (let c = cols; c < NR; c++) for (let p = 0; p < kc; p++) out[panel + p * NR + c] = 0;
  }
}

/**
 * Every MR x NR tile of an mc x nc block of C from the packed slabs. The B micro-panel is the outer loop so
 * that it stays in L1 while the A micro-panels stream from L2. Ragged tiles go through ws.edgeTile.
 */
function macroKernel(mc: number, nc: number, kc: number, ws: GemmWorkspace, c: Float32Array, cBlock: number, ldc: number, alpha: number, beta: number): void {
  const pa = ws.packedA;
  const pb = ws.packedB;
  const tile = ws.edgeTile;
  for (let jr = 0; jr < nc; jr += NR) {
    const cols = Math.min(NR, nc - jr);
    for (let ir = 0; ir < mc; ir += MR) {
      const rows = Math.min(MR, mc - ir);
      const cTile = cBlock + ir * ldc + jr;
      if (rows === MR && cols === NR) {
        microKernel(kc, pa, ir * kc, pb, jr * kc, c, cTile, ldc, alpha, beta);
      } else {
        // The edge tile holds C's old values, so its elements get exactly a full tile's arithmetic.
        if (beta !== 0) for (let r = 0; r < rows; r++) for (let q = 0; q < cols; q++) tile[r * NR + q] = c[cTile + r * ldc + q]!;
        microKernel(kc, pa, ir * kc, pb, jr * kc, tile, 0, NR, alpha, beta);
        for (let r = 0; r < rows; r++) for (let q = 0; q < cols; q++) c[cTile + r * ldc + q] = tile[r * NR + q]!;
      }
    }
  }
}

/**
 * One MR x NR = 4 x 4 tile: C[r][q] = alpha * sum_p A[p][r] * B[p][q] + beta * C[r][q] over kc >= 1 packed steps.
 * The first step initialises the accumulators so that they are float64 from the start (a literal 0 would
 * start them as small integers and make V8 box them in the loop).
 */
function microKernel(
  kc: number,
  pa: Float64Array, aAt: number,
  pb: Float64Array, bAt: number,
  c: Float32Array, cAt: number, ldc: number,
  alpha: number, beta: number,
): void {
  let ia = aAt | 0;
  let ib = bAt | 0;
  let a0 = pa[ia]!, a1 = pa[(ia + 1) | 0]!, a2 = pa[(ia + 2) | 0]!, a3 = pa[(ia + 3) | 0]!;
  let b0 = pb[ib]!, b1 = pb[(ib + 1) | 0]!, b2 = pb[(ib + 2) | 0]!, b3 = pb[(ib + 3) | 0]!;
  let c00 = a0 * b0, c01 = a0 * b1, c02 = a0 * b2, c03 = a0 * b3;
  let c10 = a1 * b0, c11 = a1 * b1, c12 = a1 * b2, c13 = a1 * b3;
  let c20 = a2 * b0, c21 = a2 * b1, c22 = a2 * b2, c23 = a2 * b3;
  let c30 = a3 * b0, c31 = a3 * b1, c32 = a3 * b2, c33 = a3 * b3;
  for (let p = 1; p < kc; p = (p + 1) | 0) {
    ia = (ia + MR) | 0;
    ib = (ib + NR) | 0;
    b0 = pb[ib]!; b1 = pb[(ib + 1) | 0]!; b2 = pb[(ib + 2) | 0]!; b3 = pb[(ib + 3) | 0]!;
    a0 = pa[ia]!;
    c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
    a1 = pa[(ia + 1) | 0]!;
    c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
    a2 = pa[(ia + 2) | 0]!;
    c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
    a3 = pa[(ia + 3) | 0]!;
    c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
  }
  const r0 = cAt, r1 = cAt + ldc, r2 = r1 + ldc, r3 = r2 + ldc;
  if (beta === 0) {
    c[r0] = alpha * c00; c[r0 + 1] = alpha * c01; c[r0 + 2] = alpha * c02; c[r0 + 3] = alpha * c03;
    c[r1] = alpha * c10; c[r1 + 1] = alpha * c11; c[r1 + 2] = alpha * c12; c[r1 + 3] = alpha * c13;
    c[r2] = alpha * c20; c[r2 + 1] = alpha * c21; c[r2 + 2] = alpha * c22; c[r2 + 3] = alpha * c23;
    c[r3] = alpha * c30; c[r3 + 1] = alpha * c31; c[r3 + 2] = alpha * c32; c[r3 + 3] = alpha * c33;
  } else {
    c[r0] = alpha * c00 + beta * c[r0]!; c[r0 + 1] = alpha * c01 + beta * c[r0 + 1]!;
    c[r0 + 2] = alpha * c02 + beta * c[r0 + 2]!; c[r0 + 3] = alpha * c03 + beta * c[r0 + 3]!;
    c[r1] = alpha * c10 + beta * c[r1]!; c[r1 + 1] = alpha * c11 + beta * c[r1 + 1]!;
    c[r1 + 2] = alpha * c12 + beta * c[r1 + 2]!; c[r1 + 3] = alpha * c13 + beta * c[r1 + 3]!;
    c[r2] = alpha * c20 + beta * c[r2]!; c[r2 + 1] = alpha * c21 + beta * c[r2 + 1]!;
    c[r2 + 2] = alpha * c22 + beta * c[r2 + 2]!; c[r2 + 3] = alpha * c23 + beta * c[r2 + 3]!;
    c[r3] = alpha * c30 + beta * c[r3]!; c[r3 + 1] = alpha * c31 + beta * c[r3 + 1]!;
    c[r3 + 2] = alpha * c32 + beta * c[r3 + 2]!; c[r3 + 3] = alpha * c33 + beta * c[r3 + 3]!;
  }
}
