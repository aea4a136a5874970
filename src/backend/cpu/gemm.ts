import { availableParallelism } from 'node:os';
import { loadCblas, type CblasLibrary } from './gemm-blas.js';
import { GemmWorkspace } from './gemm-kernel.js';
import { GemmPool } from './gemm-pool.js';

/**
 * Single-precision GEMM for the CPU backend, through the fastest implementation available:
 *   - 'openblas': a CBLAS library (OpenBLAS or any library exporting cblas_sgemm) loaded through koffi;
 *   - 'workers': the built-in packed kernel (gemm-kernel.ts, WebAssembly SIMD) on a pool of worker threads;
 *   - 'single-thread': the same kernel on the calling thread only.
 * Environment: LORAFORGE_BLAS=none | /path/libcblas.so selects or disables the library;
 * LORAFORGE_GEMM_THREADS=n sets the thread count (default: every core).
 */

export interface SgemmArgs {
  m: number; n: number; k: number; transA: boolean; transB: boolean;
  a: Float32Array; aOffset: number; lda: number;
  b: Float32Array; bOffset: number; ldb: number;
  c: Float32Array; cOffset: number; ldc: number;
  alpha: number; beta: number;
  /** Element strides between batch items; 0 = broadcast. */
  batch: number; strideA: number; strideB: number; strideC: number;
}

/**
 * y = alpha * op(A) x + beta * y for a row-major A of rows x cols with leading dimension lda; op(A) = A^T when
 * trans (then x has rows entries and y cols, else x has cols and y rows). x and y are contiguous.
 */
export interface SgemvArgs {
  rows: number; cols: number; trans: boolean;
  a: Float32Array; aOffset: number; lda: number;
  x: Float32Array; xOffset: number;
  y: Float32Array; yOffset: number;
  alpha: number; beta: number;
}

export type GemmImplementation = 'openblas' | 'workers' | 'single-thread';

export interface GemmInfo {
  implementation: GemmImplementation;
  threads: number;
  /** The CBLAS library in use, when implementation is 'openblas'. */
  library?: string;
}

export interface GemmOptions {
  /** 'auto' (the default) takes a CBLAS library when one loads, else worker threads when there are several cores. */
  implementation?: GemmImplementation | 'auto';
  /** Threads for the library and the worker pool, the calling thread included. */
  threads?: number;
  /** Problems below this many flops (2 m n k batch) run on the calling thread alone. */
  parallelMinFlops?: number;
}

/**
 * Below this many flops the built-in kernel stays on the calling thread. Measured with bench/cpu_gemm.ts
 * --threshold on 2 cores (median wall time, pool vs one thread): 2^17 flops 0.76x, 2^18 0.54-0.91x (32 x 64
 * x 64 is a single unit, so only overhead), 2^19 (64 x 64 x 64) 1.53x, 2^20 1.34x, 2^21 1.48x, 2^22 1.59x.
 * A pool job with no work costs ~5 us (17 us when the workers have gone to sleep).
 */
const DEFAULT_PARALLEL_MIN_FLOPS = 1 << 19;

/**
 * Columns of op(B) per cblas_sgemv call on the batch-invariant path: blocks of this many bytes per library
 * thread stay in the threads' L2 while every row of the batch passes over them. Measured on the GEMMs of a
 * 64-row decode step of bench/serve.ts's model (2 MiB L2 per core), one thread: 256 KiB 64-68 ms, 512 KiB
 * 62-64 ms, 1 MiB 67-80 ms, whole matrices 84-93 ms; two threads (per-thread share): 256 KiB 54-58 ms,
 * 512 KiB 44-50 ms, 1 MiB 44-48 ms, whole matrices 60 ms. The batched GEMM takes 18 ms on two threads.
 */
const ROWWISE_BLOCK_BYTES_PER_THREAD = 512 * 1024;

const INT32_MAX = 0x7fffffff;

const settings = {
  implementation: 'auto' as GemmImplementation | 'auto',
  threads: defaultThreads(),
  parallelMinFlops: DEFAULT_PARALLEL_MIN_FLOPS,
};

/** undefined: not looked for yet; null: looked for, none usable. */
let cblas: CblasLibrary | null | undefined;
let pool: GemmPool | null | undefined;
let mainWorkspace: GemmWorkspace | undefined;

function defaultThreads(): number {
  const requested = Number(process.env['LORAFORGE_GEMM_THREADS']);
  return Number.isInteger(requested) && requested > 0 ? requested : availableParallelism();
}

/** Changes how later sgemm calls run. Throws when 'openblas' is asked for and no CBLAS library loads. */
export function configureGemm(options: GemmOptions): void {
  if (options.threads !== undefined) {
    if (!Number.isInteger(options.threads) || options.threads < 1) throw new RangeError(`configureGemm: threads must be a positive integer, got ${options.threads}.`);
    if (options.threads !== settings.threads) {
      void pool?.close();
      pool = undefined;
      cblas = undefined;
    }
    settings.threads = options.threads;
  }
  if (options.parallelMinFlops !== undefined) settings.parallelMinFlops = options.parallelMinFlops;
  if (options.implementation !== undefined) {
    if (options.implementation === 'openblas' && !library()) {
      throw new Error('configureGemm: no CBLAS library could be loaded; install OpenBLAS (e.g. `apt-get install libopenblas0-pthread`) or set LORAFORGE_BLAS=/path/to/libopenblas.so.');
    }
    settings.implementation = options.implementation;
  }
}

/** The implementation that large problems take under the current settings. */
export function gemmInfo(): GemmInfo {
  const blas = settings.implementation === 'auto' || settings.implementation === 'openblas' ? library() : undefined;
  if (blas) return { implementation: 'openblas', threads: blas.threads, library: blas.path };
  // pool === null: the workers failed to start once, and sgemm stays on the calling thread.
  if (settings.implementation !== 'single-thread' && settings.threads > 1 && pool !== null) return { implementation: 'workers', threads: settings.threads };
  return { implementation: 'single-thread', threads: 1 };
}

/** Row-major, synchronous: C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b]. beta = 0 ignores C's old contents (even NaN). */
export function sgemm(args: SgemmArgs): void {
  const p = normalize(args);
  if (p.m === 0 || p.n === 0 || p.batch === 0) return;
  if (p.k === 0 || p.alpha === 0) {
    // A and B are not read (BLAS semantics): C = beta * C.
    const ws = workspace();
    for (let item = 0; item < p.batch; item++) ws.gemmBlock(p, item, 0, p.m, 0, p.n);
    return;
  }
  if (p.batch > 1 && p.strideC === 0) {
    // Every item updates the same C: run them in order, one product at a time.
    for (let item = 0; item < p.batch; item++) {
      sgemm({ ...p, batch: 1, aOffset: p.aOffset + item * p.strideA, bOffset: p.bOffset + item * p.strideB });
    }
    return;
  }
  const info = gemmInfo();
  if (info.implementation === 'openblas') {
    library()!.sgemm(p);
    return;
  }
  builtInGemm(p, info.implementation === 'workers');
}

/** The built-in kernel over normalized arguments with work to do, on the worker pool when asked and worth it. */
function builtInGemm(p: SgemmArgs, workers: boolean): void {
  const flops = 2 * p.m * p.n * p.k * p.batch;
  const threads = workers && flops >= settings.parallelMinFlops ? workerPool() : undefined;
  if (threads?.run(p, workspace())) return;
  const ws = workspace();
  for (let item = 0; item < p.batch; item++) ws.gemmBlock(p, item, 0, p.m, 0, p.n);
}

/**
 * sgemm through the built-in kernel even where a CBLAS library is loaded: element (i, j) is the same f32
 * operations whatever m and n are, and a zero tail of the depth adds nothing (gemm-kernel.ts). Attention's
 * block products use it in the batch-invariant mode, where a query's result must not depend on which other
 * queries share its block (a prompt prefilled after a cached prefix against the same prompt prefilled whole).
 */
export function sgemmBuiltIn(args: SgemmArgs): void {
  const p = normalize(args);
  if (p.m === 0 || p.n === 0 || p.batch === 0) return;
  if (p.k === 0 || p.alpha === 0 || gemmInfo().implementation !== 'openblas') {
    sgemm(p);
    return;
  }
  if (p.batch > 1 && p.strideC === 0) {
    for (let item = 0; item < p.batch; item++) sgemmBuiltIn({ ...p, batch: 1, aOffset: p.aOffset + item * p.strideA, bOffset: p.bOffset + item * p.strideB });
    return;
  }
  builtInGemm(p, settings.threads > 1 && pool !== null);
}

/**
 * sgemm in which row i of C is a function of row i of op(A), op(B) and row i of C alone: its bits do not depend
 * on m or on the other rows, so a decode step gives a sequence the same logits whatever else is in the batch.
 * The built-in kernel computes every element with the same operations for any m (gemm-kernel.ts), so it runs
 * as sgemm. A CBLAS library's GEMM does not: OpenBLAS computes a row differently depending on where it falls in
 * its register tiles (measured on Zen 3 with 0.3.21: three classes of row positions, in either operand order, so
 * padding m to a fixed size does not help). There every row goes through its own cblas_sgemv calls instead, one
 * per block of op(B)'s columns; those calls have the same sizes, matrix addresses and scratch vectors whatever
 * else is in the batch, so a deterministic library gives them the same bits.
 */
export function sgemmBatchInvariant(args: SgemmArgs): void {
  const p = normalize(args);
  const blas = gemmInfo().implementation === 'openblas' ? library() : undefined;
  if (!blas || p.m === 0 || p.n === 0 || p.batch === 0 || p.k === 0 || p.alpha === 0) {
    sgemm(p);
    return;
  }
  const width = Math.max(1, Math.min(p.n, Math.floor((ROWWISE_BLOCK_BYTES_PER_THREAD * blas.threads) / (4 * p.k))));
  const row = p.transA ? new Float32Array(p.k) : p.a;
  for (let item = 0; item < p.batch; item++) {
    const aBase = p.aOffset + item * p.strideA, bBase = p.bOffset + item * p.strideB, cBase = p.cOffset + item * p.strideC;
    for (let j0 = 0; j0 < p.n; j0 += width) {
      const cols = Math.min(width, p.n - j0);
      for (let i = 0; i < p.m; i++) {
        if (p.transA) for (let q = 0; q < p.k; q++) row[q] = p.a[aBase + q * p.lda + i]!;
        blas.sgemv({
          // op(B)'s columns j0.. as y = B_rows x (B^T stored as B) or y = (B_cols)^T x.
          rows: p.transB ? cols : p.k, cols: p.transB ? p.k : cols, trans: !p.transB,
          a: p.b, aOffset: bBase + (p.transB ? j0 * p.ldb : j0), lda: p.ldb,
          x: row, xOffset: p.transA ? 0 : aBase + i * p.lda,
          y: p.c, yOffset: cBase + i * p.ldc + j0,
          alpha: p.alpha, beta: p.beta,
        });
      }
    }
  }
}

/**
 * y = alpha * op(A) x + beta * y (SgemvArgs), for the small per-row products of batch-invariant and multi-adapter
 * paths: cblas_sgemv on the calling thread when a library is loaded, else the built-in kernel as a one-row GEMM.
 */
export function sgemv(p: SgemvArgs): void {
  const xLength = p.trans ? p.rows : p.cols;
  const yLength = p.trans ? p.cols : p.rows;
  for (const [name, value] of [['rows', p.rows], ['cols', p.cols], ['aOffset', p.aOffset], ['xOffset', p.xOffset], ['yOffset', p.yOffset]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`sgemv: ${name} must be a non-negative integer, got ${value}.`);
  }
  if (yLength === 0) return;
  const reads = xLength > 0 && p.alpha !== 0;
  if (reads && (p.lda < p.cols || (p.rows - 1) * p.lda + p.cols + p.aOffset > p.a.length)) {
    throw new RangeError(`sgemv: A (${p.rows} x ${p.cols}, lda ${p.lda}, offset ${p.aOffset}) does not fit its array of ${p.a.length}.`);
  }
  if (reads && p.xOffset + xLength > p.x.length) throw new RangeError(`sgemv: x needs ${xLength} elements from ${p.xOffset}, its array holds ${p.x.length}.`);
  if (p.yOffset + yLength > p.y.length) throw new RangeError(`sgemv: y needs ${yLength} elements from ${p.yOffset}, its array holds ${p.y.length}.`);
  const blas = reads && gemmInfo().implementation === 'openblas' ? library() : undefined;
  if (blas) {
    blas.sgemv(p);
    return;
  }
  sgemm({
    m: 1, n: yLength, k: xLength, transA: false, transB: !p.trans,
    a: p.x, aOffset: p.xOffset, lda: Math.max(1, xLength), b: p.a, bOffset: p.aOffset, ldb: p.lda,
    c: p.y, cOffset: p.yOffset, ldc: yLength, alpha: p.alpha, beta: p.beta, batch: 1, strideA: 0, strideB: 0, strideC: 0,
  });
}

function library(): CblasLibrary | undefined {
  if (cblas === undefined) cblas = loadCblas(settings.threads) ?? null;
  return cblas ?? undefined;
}

function workerPool(): GemmPool | undefined {
  if (pool && !pool.usable) pool = null;
  if (pool === undefined) {
    try {
      pool = new GemmPool(settings.threads);
    } catch (error) {
      pool = null;
      process.emitWarning(`loraforge: GEMM runs on one thread: ${(error as Error).message}`);
    }
  }
  return pool ?? undefined;
}

function workspace(): GemmWorkspace {
  mainWorkspace ??= new GemmWorkspace();
  return mainWorkspace;
}

/**
 * Checks that every element the call touches lies inside its array (a native library would otherwise
 * read or write out of bounds), and returns an equivalent, possibly cheaper call whose integers are int32
 * wherever they fit: V8 keeps them as small integers in the object then, not as doubles that would turn every
 * index computation in the kernels into float64 arithmetic.
 */
function normalize(args: SgemmArgs): SgemmArgs {
  const { m, n, k, batch } = args;
  for (const [name, value] of Object.entries({ m, n, k, batch, aOffset: args.aOffset, bOffset: args.bOffset, cOffset: args.cOffset, strideA: args.strideA, strideB: args.strideB, strideC: args.strideC })) {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`sgemm: ${name} must be a non-negative integer, got ${value}.`);
  }
  // A and B are not read when k = 0 or alpha = 0 (BLAS semantics), nor strides with a single item: zeros then.
  const reads = k > 0 && args.alpha !== 0;
  const lda = reads ? checkOperand('A', args.a, args.aOffset, args.lda, batch, args.strideA, args.transA ? k : m, args.transA ? m : k) : 0;
  const ldb = reads ? checkOperand('B', args.b, args.bOffset, args.ldb, batch, args.strideB, args.transB ? n : k, args.transB ? k : n) : 0;
  const ldc = checkOperand('C', args.c, args.cOffset, args.ldc, batch, args.strideC, m, n);
  const strideA = reads && batch > 1 ? args.strideA : 0;
  const strideB = reads && batch > 1 ? args.strideB : 0;
  const strideC = batch > 1 ? args.strideC : 0;
  // A batch that shares one B and whose A and C items follow one another is a single taller product.
  const fold = reads && batch > 1 && strideB === 0 && !args.transA && strideA === m * lda && strideC === m * ldc;
  const fitsInt32 = Math.max(m * batch, n, k, lda, ldb, ldc, args.a.length, args.b.length, args.c.length, strideA, strideB, strideC) <= INT32_MAX;
  const int = fitsInt32 ? (x: number): number => x | 0 : (x: number): number => x;
  return {
    m: int(fold ? m * batch : m), n: int(n), k: int(k), transA: args.transA, transB: args.transB,
    a: args.a, aOffset: int(reads ? args.aOffset : 0), lda: int(lda),
    b: args.b, bOffset: int(reads ? args.bOffset : 0), ldb: int(ldb),
    c: args.c, cOffset: int(args.cOffset), ldc: int(ldc),
    alpha: args.alpha, beta: args.beta,
    batch: int(fold ? 1 : batch), strideA: int(fold ? 0 : strideA), strideB: int(strideB), strideC: int(fold ? 0 : strideC),
  };
}

/**
 * Validates a batch of rows x cols matrices at `offset` with leading dimension `ld` and returns the leading
 * dimension to use: a single row makes ld irrelevant, and it is then raised to the row width (CBLAS wants that).
 */
function checkOperand(name: string, array: Float32Array, offset: number, ld: number, batch: number, stride: number, rows: number, cols: number): number {
  if (!Number.isSafeInteger(ld)) throw new RangeError(`sgemm: ld${name.toLowerCase()} must be an integer, got ${ld}.`);
  const usedLd = rows <= 1 ? Math.max(ld, cols, 1) : ld;
  if (rows > 1 && ld < cols) {
    throw new RangeError(`sgemm: ld${name.toLowerCase()} = ${ld} is smaller than the ${cols} columns of ${name}'s rows.`);
  }
  if (rows === 0 || cols === 0 || batch === 0) return usedLd;
  const last = offset + (batch - 1) * stride + (rows - 1) * ld + cols - 1;
  if (last >= array.length) {
    throw new RangeError(
      `sgemm: ${name} (${batch} x ${rows} x ${cols}, ld ${ld}, stride ${stride}, offset ${offset}) reaches element ${last}, ` +
      `but its array holds ${array.length}.`,
    );
  }
  return usedLd;
}
