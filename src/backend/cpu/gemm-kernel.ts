import type { SgemmArgs } from './gemm.js';
import { compileModule, instantiate, type CompiledModule } from './wasm/runtime.js';
import { sgemmModuleBytes, TILE_COLS as NR, TILE_ROWS as MR } from './wasm/sgemm-module.js';

/**
 * The built-in SGEMM: GotoBLAS-style blocking in TypeScript around WebAssembly SIMD kernels (wasm/sgemm-module.ts).
 *
 * Operands live in JavaScript arrays, which WebAssembly cannot address, so each thread owns an instance with
 * its own memory and copies what a block needs into it: for each block of NC columns of C and each depth block
 * of KC, the KC x NC slab of op(B) is copied (whole rows, with typed-array set) and packed into TILE_COLS-wide
 * micro-panels; then for each block of MC rows, the MC x KC slab of op(A) is copied and packed into
 * TILE_ROWS-high micro-panels, the C block is copied in (unless beta = 0) and out around the tile kernel.
 * Packing pads ragged edges with zeros and the C block's rows to whole tiles, so the kernel has one shape.
 *
 * Invariant: element (i, j) of C is the same sequence of f32 operations on row i of op(A), column j of op(B)
 * and C[i][j] whatever m, n, the other rows' values, the split into units and threads, and the kernel (tiles
 * or rows) are: depth blocks start at multiples of KC, each sums its products in depth order from -0 in f32,
 * and C takes alpha * sum (+ beta * C, with beta = 1 after the first block) after each one. So a row's result
 * never depends on what else is in its batch.
 */

export const TILE_ROWS = MR;
export const TILE_COLS = NR;
/** Depth of a packed block: a KC x NR micro-panel of B (8 KiB) stays in L1 while the kernel sweeps A. */
const KC = 256;
/** Rows of A packed at a time: MC x KC f32 (128 KiB) stays in L2. */
const MC = 128;
/** Columns of B packed at a time (KC x NC f32, 1 MiB). */
const NC = 1024;

const F32 = 4;
/** Byte offsets of the regions of an instance's memory. */
const RAW_B = 0;
const RAW_B_BYTES = KC * NC * F32;
const PACKED_B = RAW_B + RAW_B_BYTES;
const RAW_A = PACKED_B + KC * roundUp(NC, NR) * F32;
const PACKED_A = RAW_A + MC * KC * F32;
const C_BLOCK = PACKED_A + roundUp(MC, MR) * KC * F32;
const MEMORY_BYTES = C_BLOCK + roundUp(MC, MR) * roundUp(NC, NR) * F32;
const PAGE_BYTES = 65536;

/**
 * Blocks with fewer rows than this use the row kernel instead of tiles: a tile computes TILE_ROWS rows whatever
 * the block holds, so a short block wastes the rest of it.
 */
const ROWWISE_MAX_ROWS = 5;

/**
 * Columns of a transposed B that a short block copies at once (fewer when B's rows are long): measured on one
 * thread, m = 1, n x k = 1408 x 512 / 2048 x 2048: 64 columns 5.6 / 3.6 GFLOP/s, 128 5.8 / 4.1, 256 5.5 / 4.0,
 * 1024 with a copy per depth block 3.3 / 1.4.
 */
const ROWWISE_COLUMNS = 128;

let compiled: CompiledModule | undefined;

type Kernel = (...args: number[]) => number | undefined;

/** Per-thread scratch: a kernel instance and its memory. */
export class GemmWorkspace {
  private readonly memory: Float32Array;
  private readonly packA: Kernel;
  private readonly packB: Kernel;
  private readonly tiles: Kernel;
  private readonly rows: Kernel;

  constructor() {
    compiled ??= compileModule(sgemmModuleBytes(Math.ceil(MEMORY_BYTES / PAGE_BYTES)));
    const { functions, memory } = instantiate(compiled);
    const kernel = (name: string): Kernel => {
      const fn = functions.get(name);
      if (!fn) throw new Error(`sgemm module exports no function ${name}.`);
      return fn;
    };
    this.memory = new Float32Array(memory);
    this.packA = kernel('packA');
    this.packB = kernel('packB');
    this.tiles = kernel('tiles');
    this.rows = kernel('rows');
  }

  /**
   * C[item][i0:i1, j0:j1] = alpha * op(A[item]) @ op(B[item]) restricted to those rows and columns + beta * C.
   * Blocks of one problem that do not overlap in C may run concurrently on different threads.
   */
  gemmBlock(p: SgemmArgs, item: number, i0: number, i1: number, j0: number, j1: number): void {
    const aBase = p.aOffset + item * p.strideA;
    const bBase = p.bOffset + item * p.strideB;
    const cBase = p.cOffset + item * p.strideC;
    if (p.k === 0 || p.alpha === 0) {
      scaleBlock(p.c, cBase, p.ldc, i0, i1, j0, j1, p.beta);
      return;
    }
    const rowwise = i1 - i0 < ROWWISE_MAX_ROWS;
    // Short blocks of a transposed B copy whole rows of B once per column block (one memcpy when they are
    // contiguous), as few as keep the copy and its packed panels in L2.
    const wholeRows = rowwise && p.transB && p.k * NR * F32 <= RAW_B_BYTES;
    const columns = wholeRows ? Math.min(ROWWISE_COLUMNS, Math.floor(RAW_B_BYTES / (p.k * NR * F32)) * NR) : NC;
    for (let jc = j0; jc < j1; jc += columns) {
      const nc = Math.min(columns, j1 - jc);
      const ncPadded = roundUp(nc, NR);
      if (wholeRows) this.copyIn(p.b, bBase + jc * p.ldb, p.ldb, nc, p.k, RAW_B);
      for (let pc = 0; pc < p.k; pc += KC) {
        const kc = Math.min(KC, p.k - pc);
        // The row kernel reads a row-major op(B) in place; tiles, and a transposed B, want packed panels.
        const inPlace = rowwise && !p.transB;
        if (wholeRows) {
          this.packB(RAW_B + pc * F32, p.k * F32, F32, nc, kc, PACKED_B);
        } else if (p.transB) {
          this.copyIn(p.b, bBase + jc * p.ldb + pc, p.ldb, nc, kc, RAW_B);
          this.packB(RAW_B, kc * F32, F32, nc, kc, PACKED_B);
        } else {
          this.copyIn(p.b, bBase + pc * p.ldb + jc, p.ldb, kc, nc, RAW_B, ncPadded);
          if (!inPlace) this.packB(RAW_B, F32, ncPadded * F32, nc, kc, PACKED_B);
        }
        const [b, panelStride, depthStride] = inPlace ? [RAW_B, NR * F32, ncPadded * F32] : [PACKED_B, kc * NR * F32, NR * F32];
        // Later depth blocks accumulate onto what the first one stored.
        const beta = pc === 0 ? p.beta : 1;
        for (let ic = i0; ic < i1; ic += MC) {
          const mc = Math.min(MC, i1 - ic);
          const cAt = cBase + ic * p.ldc + jc;
          if (beta !== 0) this.copyIn(p.c, cAt, p.ldc, mc, nc, C_BLOCK, ncPadded);
          if (p.transA) this.copyIn(p.a, aBase + pc * p.lda + ic, p.lda, kc, mc, RAW_A);
          else this.copyIn(p.a, aBase + ic * p.lda + pc, p.lda, mc, kc, RAW_A);
          // Element (r, q) of op(A)'s block in RAW_A: at r * rowStride + q * depthStride bytes.
          const rowStride = p.transA ? F32 : kc * F32, aDepthStride = p.transA ? mc * F32 : F32;
          if (rowwise) {
            for (let r = 0; r < mc; r++) {
              this.rows(RAW_A + r * rowStride, aDepthStride, b, panelStride, depthStride, C_BLOCK + r * ncPadded * F32, ncPadded, kc, p.alpha, beta);
            }
          } else {
            this.packA(RAW_A, rowStride, aDepthStride, mc, kc, PACKED_A);
            this.tiles(PACKED_A, PACKED_B, C_BLOCK, roundUp(mc, MR), ncPadded, kc, ncPadded * F32, p.alpha, beta);
          }
          this.copyOut(p.c, cAt, p.ldc, mc, nc, C_BLOCK, ncPadded);
        }
      }
    }
  }

  /** rows x cols elements of `src` from `at` with leading dimension ld, into memory at byte `dst` with leading dimension dstLd. */
  private copyIn(src: Float32Array, at: number, ld: number, rows: number, cols: number, dst: number, dstLd = cols): void {
    const to = dst / F32;
    if (ld === cols && dstLd === cols) {
      this.memory.set(src.subarray(at, at + rows * cols), to);
      return;
    }
    for (let r = 0; r < rows; r++) this.memory.set(src.subarray(at + r * ld, at + r * ld + cols), to + r * dstLd);
  }

  /** The inverse of copyIn: rows x cols elements from memory at byte `src` (leading dimension srcLd) into `dst`. */
  private copyOut(dst: Float32Array, at: number, ld: number, rows: number, cols: number, src: number, srcLd: number): void {
    const from = src / F32;
    for (let r = 0; r < rows; r++) dst.set(this.memory.subarray(from + r * srcLd, from + r * srcLd + cols), at + r * ld);
  }
}

function roundUp(x: number, multiple: number): number {
  return Math.ceil(x / multiple) * multiple;
}

/** C = beta * C over a block; beta = 0 writes zeros whatever C held (NaN included). */
function scaleBlock(c: Float32Array, cBase: number, ldc: number, i0: number, i1: number, j0: number, j1: number, beta: number): void {
  for (let i = i0; i < i1; i++) {
    const row = cBase + i * ldc;
    if (beta === 0) c.fill(0, row + j0, row + j1);
    else if (beta !== 1) for (let j = row + j0; j < row + j1; j++) c[j] = beta * c[j]!;
  }
}
