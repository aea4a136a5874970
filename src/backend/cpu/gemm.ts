import { availableParallelism } from 'node:os';
import { loadCblas, type CblasLibrary } from './gemm-blas.js';
import { gemmBlock, GemmWorkspace } from './gemm-kernel.js';
import { GemmPool } from './gemm-pool.js';

/**
 * Single-precision GEMM for the CPU backend, through the fastest implementation available:
 *   - 'openblas': a CBLAS library (OpenBLAS or any library exporting cblas_sgemm) loaded through koffi;
 *   - 'workers': the pure-TypeScript packed kernel (gemm-kernel.ts) on a pool of worker threads;
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
 * Below this many flops the pure-TS path stays on the calling thread. Measured with bench/cpu_gemm.ts
 * --threshold on 2 cores (median wall time, pool vs one thread): 2^17 flops 0.76x, 2^18 0.54-0.91x (32 x 64
 * x 64 is a single unit, so only overhead), 2^19 (64 x 64 x 64) 1.53x, 2^20 1.34x, 2^21 1.48x, 2^22 1.59x.
 * A pool job with no work costs ~5 us (17 us when the workers have gone to sleep).
 */
const DEFAULT_PARALLEL_MIN_FLOPS = 1 << 19;

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
    for (let item = 0; item < p.batch; item++) gemmBlock(p, item, 0, p.m, 0, p.n, ws);
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
  const flops = 2 * p.m * p.n * p.k * p.batch;
  const threads = info.implementation === 'workers' && flops >= settings.parallelMinFlops ? workerPool() : undefined;
  if (threads?.run(p, workspace())) return;
  const ws = workspace();
  for (let item = 0; item < p.batch; item++) gemmBlock(p, item, 0, p.m, 0, p.n, ws);
}

function library(): CblasLibrary | undefined {
  if (cblas === undefined) cblas = loadCblas(settings.threads) ?? null;
  return cblas ?? undefined;
}

function workerPool(): GemmPool | undefined {
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
  const reads = k > 0 && args.alpha !== 0;
  let lda = args.lda, ldb = args.ldb;
  if (reads) {
    lda = checkOperand('A', args.a, args.aOffset, args.lda, batch, args.strideA, args.transA ? k : m, args.transA ? m : k);
    ldb = checkOperand('B', args.b, args.bOffset, args.ldb, batch, args.strideB, args.transB ? n : k, args.transB ? k : n);
  }
  const ldc = checkOperand('C', args.c, args.cOffset, args.ldc, batch, args.strideC, m, n);
  // A batch that shares one B and whose A and C items follow one another is a single taller product.
  const fold = reads && batch > 1 && args.strideB === 0 && !args.transA && args.strideA === m * lda && args.strideC === m * ldc;
  const p: SgemmArgs = {
    m: fold ? m * batch : m, n, k, transA: args.transA, transB: args.transB,
    a: args.a, aOffset: args.aOffset, lda, b: args.b, bOffset: args.bOffset, ldb, c: args.c, cOffset: args.cOffset, ldc,
    alpha: args.alpha, beta: args.beta,
    batch: fold ? 1 : batch, strideA: args.strideA, strideB: args.strideB, strideC: args.strideC,
  };
  const integers = [p.m, n, k, p.aOffset, p.bOffset, p.cOffset, lda, ldb, ldc, p.batch, p.strideA, p.strideB, p.strideC];
  if (Math.max(...integers, p.a.length, p.b.length, p.c.length) > INT32_MAX) return p;
  return {
    ...p,
    m: p.m | 0, n: n | 0, k: k | 0, aOffset: p.aOffset | 0, lda: lda | 0, bOffset: p.bOffset | 0, ldb: ldb | 0,
    cOffset: p.cOffset | 0, ldc: ldc | 0, batch: p.batch | 0, strideA: p.strideA | 0, strideB: p.strideB | 0, strideC: p.strideC | 0,
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
