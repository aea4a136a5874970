import type { MessagePort } from 'node:worker_threads';
import type { SgemmArgs } from './gemm.js';
import { TILE_COLS, TILE_ROWS, type GemmWorkspace } from './gemm-kernel.js';

/**
 * A GEMM shared by the main thread and the pool's workers: how it is split into units, and how it is written
 * into the shared control block that the workers read.
 *
 * Control block layout (one SharedArrayBuffer): CONTROL_INTS Int32 control words, JOB_INTS Int32 job
 * fields, then alpha and beta as Float64 (8-byte aligned). Integers travel as Int32 on purpose: numbers
 * read from a Float64Array make V8 store them as doubles in the job object, and every index computed from
 * them then runs in float64 (measured: the row-wise path at half speed). So a job's indices must fit in
 * int32 (jobFitsInt32).
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

/** Int32 job fields, relative to JobViews.ints. */
const M = 0, N = 1, K = 2, TRANS_A = 3, TRANS_B = 4;
const A_SLOT = 5, A_OFFSET = 6, LDA = 7, B_SLOT = 8, B_OFFSET = 9, LDB = 10, C_SLOT = 11, C_OFFSET = 12, LDC = 13;
const BATCH = 14, STRIDE_A = 15, STRIDE_B = 16, STRIDE_C = 17, ROW_BLOCK = 18, COL_BLOCK = 19;
const JOB_INTS = 20;
/** Float64 job fields, relative to JobViews.floats. */
const ALPHA = 0, BETA = 1;
const JOB_FLOATS = 2;
const FLOATS_BYTE_OFFSET = Math.ceil(((CONTROL_INTS + JOB_INTS) * 4) / 8) * 8;
const WORKER_WORDS_BYTE_OFFSET = FLOATS_BYTE_OFFSET + JOB_FLOATS * 8;

/** Bytes of the control block of a pool with `workers` workers. */
export function controlBytes(workers: number): number {
  return WORKER_WORDS_BYTE_OFFSET + workers * 2 * 4;
}

/**
 * Two Int32 words per worker: [2 w] the generation it last picked up (stored before it claims any unit),
 * [2 w + 1] the generation it last finished. They let the pool tell a busy worker from one that never woke.
 */
export function workerWords(control: SharedArrayBuffer, workers: number): Int32Array {
  return new Int32Array(control, WORKER_WORDS_BYTE_OFFSET, workers * 2);
}

const INT32_MAX = 0x7fffffff;

export interface JobViews {
  readonly ints: Int32Array;
  readonly floats: Float64Array;
}

export function jobViews(control: SharedArrayBuffer): JobViews {
  return {
    ints: new Int32Array(control, CONTROL_INTS * 4, JOB_INTS),
    floats: new Float64Array(control, FLOATS_BYTE_OFFSET, JOB_FLOATS),
  };
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
const MIN_UNIT_ROWS = 8 * TILE_ROWS;
const MIN_UNIT_COLS = 16 * TILE_COLS;

export function planUnits(m: number, n: number, batch: number, threads: number): UnitGrid {
  const splitsPerItem = Math.ceil((threads * UNITS_PER_THREAD) / batch);
  const rowSplits = Math.max(1, Math.min(splitsPerItem, Math.ceil(m / MIN_UNIT_ROWS)));
  const colSplits = Math.max(1, Math.min(Math.ceil(splitsPerItem / rowSplits), Math.ceil(n / MIN_UNIT_COLS)));
  const rowBlock = roundUp(Math.ceil(m / rowSplits), TILE_ROWS);
  const colBlock = roundUp(Math.ceil(n / colSplits), TILE_COLS);
  const rowBlocks = Math.ceil(m / rowBlock);
  const colBlocks = Math.ceil(n / colBlock);
  return { rowBlock, colBlock, rowBlocks, colBlocks, units: batch * rowBlocks * colBlocks };
}

function roundUp(x: number, multiple: number): number {
  return Math.ceil(x / multiple) * multiple;
}

/**
 * How long a thread polls before sleeping in Atomics.wait. A futex round trip costs ~15 us here (a pool job
 * with no work: 17 us sleeping, 5 us polling), so polling about as long as a wake-up costs catches GEMMs that
 * follow each other closely and wastes at most that much when none follows. Measured with 0, 30 and 150 us
 * (bench/cpu_gemm.ts --threshold, 2 cores): 64 x 64 x 64 on the pool went from 0.86x to 1.53x and 1.55x.
 */
const SPIN_MICROSECONDS = 30;

/**
 * Returns true once control[index] differs from `value` (polling for SPIN_MICROSECONDS, then sleeping), or
 * false when `timeoutMs` of sleep passed first.
 */
export function waitForChange(control: Int32Array, index: number, value: number, timeoutMs = Infinity): boolean {
  const deadline = performance.now() + SPIN_MICROSECONDS / 1000;
  for (let polls = 1; Atomics.load(control, index) === value; polls++) {
    if ((polls & 63) === 0 && performance.now() > deadline) return sleepUntilChange(control, index, value, timeoutMs);
  }
  return true;
}

/**
 * Atomics.wait until control[index] differs from `value`. Being woken is not a change: the notify that goes with
 * a change can arrive after a poller already saw that change, acted on it and went back to sleep on the new
 * value (the notifier was descheduled between its store and its notify), and it then wakes that sleeper with
 * nothing new to see.
 */
function sleepUntilChange(control: Int32Array, index: number, value: number, timeoutMs: number): boolean {
  const end = performance.now() + timeoutMs;
  while (Atomics.load(control, index) === value) {
    const left = end - performance.now();
    if (left <= 0 || Atomics.wait(control, index, value, left) === 'timed-out') return Atomics.load(control, index) !== value;
  }
  return true;
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
    ws.gemmBlock(p, item, i0, Math.min(p.m, i0 + grid.rowBlock), j0, Math.min(p.n, j0 + grid.colBlock));
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

/**
 * Whether every integer of the job fits in int32, and every element index it reaches in each buffer:
 * `ends` holds, per operand, one past the last element from the start of its buffer.
 */
export function jobFitsInt32(p: SgemmArgs, ends: readonly number[]): boolean {
  return Math.max(p.m, p.n, p.k, p.lda, p.ldb, p.ldc, p.batch, p.strideA, p.strideB, p.strideC, ...ends) <= INT32_MAX;
}

/** Writes a job that jobFitsInt32 accepted. */
export function writeJob(job: JobViews, p: SgemmArgs, operands: SlotOperands, grid: UnitGrid): void {
  const i = job.ints;
  i[M] = p.m; i[N] = p.n; i[K] = p.k;
  i[TRANS_A] = p.transA ? 1 : 0; i[TRANS_B] = p.transB ? 1 : 0;
  i[A_SLOT] = operands.aSlot; i[A_OFFSET] = operands.aOffset; i[LDA] = p.lda;
  i[B_SLOT] = operands.bSlot; i[B_OFFSET] = operands.bOffset; i[LDB] = p.ldb;
  i[C_SLOT] = operands.cSlot; i[C_OFFSET] = operands.cOffset; i[LDC] = p.ldc;
  i[BATCH] = p.batch; i[STRIDE_A] = p.strideA; i[STRIDE_B] = p.strideB; i[STRIDE_C] = p.strideC;
  i[ROW_BLOCK] = grid.rowBlock; i[COL_BLOCK] = grid.colBlock;
  job.floats[ALPHA] = p.alpha;
  job.floats[BETA] = p.beta;
}

/** The job as a worker sees it; `slots` maps slot numbers to Float32Array views of whole buffers. */
export function readJob(job: JobViews, slots: readonly (Float32Array | undefined)[]): { args: SgemmArgs; grid: UnitGrid } {
  const slot = (index: number): Float32Array => {
    const array = slots[index];
    if (!array) throw new Error(`GEMM worker: operand slot ${index} is empty (the pool sent no buffer for it).`);
    return array;
  };
  const i = job.ints;
  const m = i[M]!, n = i[N]!, batch = i[BATCH]!;
  const rowBlock = i[ROW_BLOCK]!, colBlock = i[COL_BLOCK]!;
  const rowBlocks = Math.ceil(m / rowBlock), colBlocks = Math.ceil(n / colBlock);
  return {
    args: {
      m, n, k: i[K]!, transA: i[TRANS_A] === 1, transB: i[TRANS_B] === 1,
      a: slot(i[A_SLOT]!), aOffset: i[A_OFFSET]!, lda: i[LDA]!,
      b: slot(i[B_SLOT]!), bOffset: i[B_OFFSET]!, ldb: i[LDB]!,
      c: slot(i[C_SLOT]!), cOffset: i[C_OFFSET]!, ldc: i[LDC]!,
      alpha: job.floats[ALPHA]!, beta: job.floats[BETA]!,
      batch, strideA: i[STRIDE_A]!, strideB: i[STRIDE_B]!, strideC: i[STRIDE_C]!,
    },
    grid: { rowBlock, colBlock, rowBlocks, colBlocks, units: batch * rowBlocks * colBlocks },
  };
}

/** What a worker is started with. */
export interface GemmWorkerData {
  readonly control: SharedArrayBuffer;
  /** This worker's index among the pool's workers (its pair of workerWords). */
  readonly index: number;
  readonly workers: number;
  /** Receives SlotMessages from the pool; carries FailureMessages back. */
  readonly port: MessagePort;
  /** The generation the pool held when it created this worker; the next job bumps it. */
  readonly generation: number;
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
