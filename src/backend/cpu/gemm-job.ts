import type { SgemmArgs } from './gemm.js';
import { gemmBlock, MR, NR, type GemmWorkspace } from './gemm-kernel.js';

/**
 * A GEMM shared by the main thread and the pool's workers: how it is split into units, and how it is written
 * into the shared control block that the workers read.
 *
 * Control block layout (one SharedArrayBuffer): CONTROL_INTS Int32 words, then JOB_FIELDS Float64 words
 * (from JOB_BYTE_OFFSET).
 * Operands are not in the block: each thread holds every SharedArrayBuffer it has been sent in a numbered
 * slot, and the job names slots and element offsets relative to the start of the buffer.
 */

/** Int32 word indices of the control block. */
export const GENERATION = 0;
/** Next unit index to claim (Atomics.add). */
export const NEXT_UNIT = 1;
/** Workers that have not yet finished the current job; the last one notifies. */
export const PENDING = 2;
/** Set to 1 by a worker whose unit threw; its message follows on its port. */
export const FAILED = 3;
/** Workers that have started; each increments it once. */
export const READY = 4;
export const CONTROL_INTS = 5;

const M = 0, N = 1, K = 2, TRANS_A = 3, TRANS_B = 4;
const A_SLOT = 5, A_OFFSET = 6, LDA = 7, B_SLOT = 8, B_OFFSET = 9, LDB = 10, C_SLOT = 11, C_OFFSET = 12, LDC = 13;
const ALPHA = 14, BETA = 15, BATCH = 16, STRIDE_A = 17, STRIDE_B = 18, STRIDE_C = 19;
const ROW_BLOCK = 20, COL_BLOCK = 21;
export const JOB_FIELDS = 22;
/** The Float64 words start 8-byte aligned after the Int32 words. */
const JOB_BYTE_OFFSET = Math.ceil((CONTROL_INTS * 4) / 8) * 8;
/** Bytes of the control block. */
export const CONTROL_BYTES = JOB_BYTE_OFFSET + JOB_FIELDS * 8;

/** The job's Float64 words inside the control block. */
export function jobView(control: SharedArrayBuffer): Float64Array {
  return new Float64Array(control, JOB_BYTE_OFFSET, JOB_FIELDS);
}

/**
 * The split of a batch of m x n results into units: item-major, then row blocks, then column blocks.
 * Units never overlap in C, so threads claim them in any order.
 */
export interface UnitGrid {
  readonly rowBlock: number;
  readonly colBlock: number;
  readonly rowBlocks: number;
  readonly colBlocks: number;
  readonly units: number;
}

/** Units per thread: enough for a late or descheduled thread to be covered by the others. */
const UNITS_PER_THREAD = 4;
/** Below these, a unit's packing overhead (one B slab per unit, one A slab per unit) stops being negligible. */
const MIN_UNIT_ROWS = 8 * MR;
const MIN_UNIT_COLS = 16 * NR;

export function planUnits(m: number, n: number, batch: number, threads: number): UnitGrid {
  const splitsPerItem = Math.ceil((threads * UNITS_PER_THREAD) / batch);
  const rowSplits = Math.max(1, Math.min(splitsPerItem, Math.ceil(m / MIN_UNIT_ROWS)));
  const colSplits = Math.max(1, Math.min(Math.ceil(splitsPerItem / rowSplits), Math.ceil(n / MIN_UNIT_COLS)));
  const rowBlock = roundUp(Math.ceil(m / rowSplits), MR);
  const colBlock = roundUp(Math.ceil(n / colSplits), NR);
  const rowBlocks = Math.ceil(m / rowBlock);
  const colBlocks = Math.ceil(n / colBlock);
  return { rowBlock, colBlock, rowBlocks, colBlocks, units: batch * rowBlocks * colBlocks };
}

function roundUp(x: number, multiple: number): number {
  return Math.ceil(x / multiple) * multiple;
}

/** Claims units from the shared counter until none are left, computing each one. */
export function runUnits(control: Int32Array, p: SgemmArgs, grid: UnitGrid, ws: GemmWorkspace): void {
  const perItem = grid.rowBlocks * grid.colBlocks;
  for (let u = Atomics.add(control, NEXT_UNIT, 1); u < grid.units; u = Atomics.add(control, NEXT_UNIT, 1)) {
    const item = Math.floor(u / perItem);
    const rest = u - item * perItem;
    const rowIndex = Math.floor(rest / grid.colBlocks);
    const i0 = rowIndex * grid.rowBlock;
    const j0 = (rest - rowIndex * grid.colBlocks) * grid.colBlock;
    gemmBlock(p, item, i0, Math.min(p.m, i0 + grid.rowBlock), j0, Math.min(p.n, j0 + grid.colBlock), ws);
  }
}

/** Operand slots and element offsets from the start of each slot's buffer. */
export interface SlotOperands {
  readonly aSlot: number;
  readonly aOffset: number;
  readonly bSlot: number;
  readonly bOffset: number;
  readonly cSlot: number;
  readonly cOffset: number;
}

export function writeJob(job: Float64Array, p: SgemmArgs, operands: SlotOperands, grid: UnitGrid): void {
  job[M] = p.m; job[N] = p.n; job[K] = p.k;
  job[TRANS_A] = p.transA ? 1 : 0; job[TRANS_B] = p.transB ? 1 : 0;
  job[A_SLOT] = operands.aSlot; job[A_OFFSET] = operands.aOffset; job[LDA] = p.lda;
  job[B_SLOT] = operands.bSlot; job[B_OFFSET] = operands.bOffset; job[LDB] = p.ldb;
  job[C_SLOT] = operands.cSlot; job[C_OFFSET] = operands.cOffset; job[LDC] = p.ldc;
  job[ALPHA] = p.alpha; job[BETA] = p.beta;
  job[BATCH] = p.batch; job[STRIDE_A] = p.strideA; job[STRIDE_B] = p.strideB; job[STRIDE_C] = p.strideC;
  job[ROW_BLOCK] = grid.rowBlock; job[COL_BLOCK] = grid.colBlock;
}

/** The job as a worker sees it; `slots` maps slot numbers to Float32Array views of whole buffers. */
export function readJob(job: Float64Array, slots: readonly (Float32Array | undefined)[]): { args: SgemmArgs; grid: UnitGrid } {
  const slot = (index: number): Float32Array => {
    const array = slots[index];
    if (!array) throw new Error(`GEMM worker: operand slot ${index} is empty (the pool sent no buffer for it).`);
    return array;
  };
  const m = job[M]!, n = job[N]!, batch = job[BATCH]!;
  const rowBlock = job[ROW_BLOCK]!, colBlock = job[COL_BLOCK]!;
  const rowBlocks = Math.ceil(m / rowBlock), colBlocks = Math.ceil(n / colBlock);
  return {
    args: {
      m, n, k: job[K]!, transA: job[TRANS_A] === 1, transB: job[TRANS_B] === 1,
      a: slot(job[A_SLOT]!), aOffset: job[A_OFFSET]!, lda: job[LDA]!,
      b: slot(job[B_SLOT]!), bOffset: job[B_OFFSET]!, ldb: job[LDB]!,
      c: slot(job[C_SLOT]!), cOffset: job[C_OFFSET]!, ldc: job[LDC]!,
      alpha: job[ALPHA]!, beta: job[BETA]!,
      batch, strideA: job[STRIDE_A]!, strideB: job[STRIDE_B]!, strideC: job[STRIDE_C]!,
    },
    grid: { rowBlock, colBlock, rowBlocks, colBlocks, units: batch * rowBlocks * colBlocks },
  };
}

/** What the pool sends a worker through its port. */
export interface SlotMessage {
  readonly slot: number;
  /** null releases the slot. */
  readonly buffer: SharedArrayBuffer | null;
}

/** What a worker sends back when a unit throws. */
export interface FailureMessage {
  readonly error: string;
}
