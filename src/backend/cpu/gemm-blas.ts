import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { SgemmArgs, SgemvArgs } from './gemm.js';

/**
 * A CBLAS library (OpenBLAS first, any library exporting cblas_sgemm otherwise) called through koffi.
 *
 * Operands are passed as raw addresses: a SharedArrayBuffer's memory never moves, so its base address is
 * looked up once and an element offset becomes `base + 4 * offset`, with no view object and no copy per call.
 * Views over ordinary ArrayBuffers go through `subarray`, which koffi also passes by address, without copying.
 */
export interface CblasLibrary {
  /** The file or name that was loaded. */
  readonly path: string;
  /** Threads the library computes with (as it reports them, else as requested). */
  readonly threads: number;
  sgemm(p: SgemmArgs): void;
  /**
   * cblas_sgemv with x and y copied through the same 64-byte aligned scratch vectors every time, so that the
   * call's bits depend only on the values, the sizes and A's address, never on where x and y live. Matrices
   * below SGEMV_PARALLEL_MIN_ELEMENTS run on the calling thread alone.
   */
  sgemv(p: SgemvArgs): void;
}

type Koffi = typeof import('koffi');
type Pointer = number | Float32Array;
type CblasSgemm = (
  order: number, transA: number, transB: number, m: number, n: number, k: number,
  alpha: number, a: Pointer, lda: number, b: Pointer, ldb: number, beta: number, c: Pointer, ldc: number,
) => void;
type CblasSgemv = (
  order: number, trans: number, m: number, n: number,
  alpha: number, a: Pointer, lda: number, x: Pointer, incx: number, beta: number, y: Pointer, incy: number,
) => void;
type CblasSgemmBatchStrided = (
  order: number, transA: number, transB: number, m: number, n: number, k: number,
  alpha: number, a: Pointer, lda: number, strideA: number, b: Pointer, ldb: number, strideB: number,
  beta: number, c: Pointer, ldc: number, strideC: number, batch: number,
) => void;

const ROW_MAJOR = 101;
const NO_TRANS = 111;
const TRANS = 112;
const INT32_MAX = 0x7fffffff;
/**
 * sgemv on smaller matrices stays on the calling thread: OpenBLAS splits anything above 9216 elements, and
 * LoRA's products (r x in, out x r: 8-23 K elements per row) gain nothing from it. Measured on the LoRA products
 * of a 64-adapter decode step of bench/serve.ts's model: 12.5-14 ms on one or two threads when the other core
 * is idle, 13 ms on one and 18-19 ms on two when it is busy.
 */
const SGEMV_PARALLEL_MIN_ELEMENTS = 1 << 16;

const SGEMM_SIGNATURE =
  'void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda, ' +
  'const float *b, int ldb, float beta, float *c, int ldc)';
const SGEMV_SIGNATURE =
  'void cblas_sgemv(int order, int trans, int m, int n, float alpha, const float *a, int lda, const float *x, int incx, ' +
  'float beta, float *y, int incy)';
/** As in MKL, NVPL and OpenBLAS >= 0.3.28 (LP64: every integer is a C int). */
const SGEMM_BATCH_STRIDED_SIGNATURE =
  'void cblas_sgemm_batch_strided(int order, int transA, int transB, int m, int n, int k, float alpha, ' +
  'const float *a, int lda, int strideA, const float *b, int ldb, int strideB, float beta, float *c, int ldc, ' +
  'int strideC, int batch)';

/** Folders searched for versioned OpenBLAS files such as libopenblasp-r0.3.21.so. */
const LIBRARY_FOLDERS = [
  '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib',
  '/usr/lib/x86_64-linux-gnu/openblas-pthread', '/usr/lib/aarch64-linux-gnu/openblas-pthread',
  '/usr/lib64/openblas', '/opt/homebrew/opt/openblas/lib', '/usr/local/opt/openblas/lib',
];

function candidateLibraries(): string[] {
  const names = ['libopenblas.so.0', 'libopenblas.so'];
  for (const folder of LIBRARY_FOLDERS) {
    let files: string[];
    try {
      files = readdirSync(folder);
    } catch {
      continue;
    }
    for (const file of files.sort()) {
      if (/^libopenblas.*-r0.*\.(so|dylib)/.test(file)) names.push(`${folder}/${file}`);
    }
  }
  names.push(
    // Intel MKL's single dynamic library and BLIS (both export the CBLAS interface), then the generic BLAS names.
    'libmkl_rt.so.2', 'libmkl_rt.so', 'libblis-mt.so.4', 'libblis.so.4', 'libblis.so',
    'libblas.so.3', 'libcblas.so.3',
    'libopenblas.dylib', '/opt/homebrew/opt/openblas/lib/libopenblas.dylib', '/usr/local/opt/openblas/lib/libopenblas.dylib',
    '/System/Library/Frameworks/Accelerate.framework/Accelerate',
    'libopenblas.dll', 'openblas.dll',
  );
  return names;
}

function loadKoffi(): Koffi | undefined {
  try {
    return createRequire(import.meta.url)('koffi') as Koffi;
  } catch {
    return undefined;
  }
}

/**
 * Finds and opens a CBLAS library. LORAFORGE_BLAS=none disables the search; LORAFORGE_BLAS=/path/lib.so names
 * the one library to use and makes failing to open it an error. Returns undefined when none is usable.
 */
export function loadCblas(threads: number): CblasLibrary | undefined {
  const requested = process.env['LORAFORGE_BLAS']?.trim();
  if (requested === 'none') return undefined;
  const koffi = loadKoffi();
  if (!koffi) {
    if (requested) throw new Error(`LORAFORGE_BLAS=${requested} needs the koffi package, which could not be loaded; reinstall dependencies or unset LORAFORGE_BLAS.`);
    return undefined;
  }
  const candidates = requested ? [requested] : candidateLibraries();
  for (const path of candidates) {
    const library = openCblas(koffi, path, threads);
    if (library) return library;
  }
  if (requested) {
    throw new Error(`LORAFORGE_BLAS=${requested}: could not open it as a CBLAS library exporting cblas_sgemm; give the full path of libopenblas.so, or set LORAFORGE_BLAS=none.`);
  }
  return undefined;
}

function openCblas(koffi: Koffi, path: string, threads: number): CblasLibrary | undefined {
  let lib: ReturnType<Koffi['load']>;
  let sgemm: CblasSgemm;
  let sgemv: CblasSgemv;
  try {
    lib = koffi.load(path);
    sgemm = lib.func(SGEMM_SIGNATURE) as CblasSgemm;
    sgemv = lib.func(SGEMV_SIGNATURE) as CblasSgemv;
  } catch {
    return undefined;
  }
  const optional = <T>(signature: string): T | undefined => {
    try {
      return lib.func(signature) as T;
    } catch {
      return undefined;
    }
  };
  // Each library's own thread control: OpenBLAS's, MKL's, or BLIS's (which takes a dim_t, 64-bit on LP64).
  const setThreads =
    optional<(n: number) => void>('void openblas_set_num_threads(int n)') ??
    optional<(n: number) => void>('void MKL_Set_Num_Threads(int n)') ??
    optional<(n: number) => void>('void bli_thread_set_num_threads(int64_t n)');
  const getThreads = optional<() => number>('int openblas_get_num_threads()') ?? optional<() => number>('int MKL_Get_Max_Threads()');
  setThreads?.(threads);
  const batchStrided = optional<CblasSgemmBatchStrided>(SGEMM_BATCH_STRIDED_SIGNATURE);
  return new KoffiCblas(koffi, path, getThreads?.() ?? threads, sgemm, sgemv, batchStrided && agreesWithLoop(sgemm, batchStrided) ? batchStrided : undefined, setThreads);
}

class KoffiCblas implements CblasLibrary {
  /** Base address of each SharedArrayBuffer seen, as a Number (addresses fit in 53 bits). */
  private readonly baseAddress = new WeakMap<SharedArrayBuffer, number>();
  /** sgemv's x and y scratch vectors: 64-byte aligned, grown (and so moved) only for a longer vector than seen before. */
  private vectors: { x: Float32Array; y: Float32Array } = { x: new Float32Array(0), y: new Float32Array(0) };

  constructor(
    private readonly koffi: Koffi,
    readonly path: string,
    readonly threads: number,
    private readonly cblasSgemm: CblasSgemm,
    private readonly cblasSgemv: CblasSgemv,
    private readonly cblasSgemmBatchStrided: CblasSgemmBatchStrided | undefined,
    private readonly setThreads: ((n: number) => void) | undefined,
  ) {
    this.activeThreads = threads;
  }

  /** The library's thread count now: changed only when a call needs another, so runs of small sgemvs cost no switches. */
  private activeThreads: number;

  private useThreads(n: number): void {
    if (this.activeThreads === n || !this.setThreads) return;
    this.setThreads(n);
    this.activeThreads = n;
  }

  sgemv(p: SgemvArgs): void {
    const xLength = p.trans ? p.rows : p.cols;
    const yLength = p.trans ? p.cols : p.rows;
    const { x, y } = this.scratch(xLength, yLength);
    x.set(p.x.subarray(p.xOffset, p.xOffset + xLength));
    // beta = 0 must ignore y even where it holds NaN, which a library may scale rather than overwrite.
    if (p.beta === 0) y.fill(0, 0, yLength);
    else y.set(p.y.subarray(p.yOffset, p.yOffset + yLength));
    this.useThreads(p.rows * p.cols < SGEMV_PARALLEL_MIN_ELEMENTS ? 1 : this.threads);
    this.cblasSgemv(ROW_MAJOR, p.trans ? TRANS : NO_TRANS, p.rows, p.cols, p.alpha,
      this.pointer(p.a, p.aOffset), Math.max(p.lda, p.cols, 1), this.pointer(x, 0), 1, p.beta, this.pointer(y, 0), 1);
    p.y.set(y.subarray(0, yLength), p.yOffset);
  }

  private scratch(xLength: number, yLength: number): { x: Float32Array; y: Float32Array } {
    if (this.vectors.x.length < xLength || this.vectors.y.length < yLength) {
      this.vectors = { x: this.aligned(Math.max(xLength, this.vectors.x.length)), y: this.aligned(Math.max(yLength, this.vectors.y.length)) };
    }
    return this.vectors;
  }

  /** A float32 array of `length` on a SharedArrayBuffer, starting at a 64-byte boundary. */
  private aligned(length: number): Float32Array {
    const buffer = new SharedArrayBuffer(4 * length + 64);
    const misalignment = this.base(buffer) % 64;
    return new Float32Array(buffer, misalignment === 0 ? 0 : 64 - misalignment, length);
  }

  sgemm(p: SgemmArgs): void {
    const ta = p.transA ? TRANS : NO_TRANS;
    const tb = p.transB ? TRANS : NO_TRANS;
    const { lda, ldb, ldc } = p;
    this.useThreads(this.threads);
    const strided = this.cblasSgemmBatchStrided;
    // The library may run batch items concurrently, so it only gets batches whose C matrices are disjoint.
    const disjointC = p.strideC >= (p.m - 1) * ldc + p.n;
    if (p.batch > 1 && strided && disjointC && Math.max(p.strideA, p.strideB, p.strideC) <= INT32_MAX) {
      strided(ROW_MAJOR, ta, tb, p.m, p.n, p.k, p.alpha,
        this.pointer(p.a, p.aOffset), lda, p.strideA,
        this.pointer(p.b, p.bOffset), ldb, p.strideB,
        p.beta, this.pointer(p.c, p.cOffset), ldc, p.strideC, p.batch);
      return;
    }
    for (let item = 0; item < p.batch; item++) {
      this.cblasSgemm(ROW_MAJOR, ta, tb, p.m, p.n, p.k, p.alpha,
        this.pointer(p.a, p.aOffset + item * p.strideA), lda,
        this.pointer(p.b, p.bOffset + item * p.strideB), ldb,
        p.beta, this.pointer(p.c, p.cOffset + item * p.strideC), ldc);
    }
  }

  private pointer(view: Float32Array, offset: number): Pointer {
    const buffer = view.buffer;
    if (!(buffer instanceof SharedArrayBuffer)) return view.subarray(offset);
    return this.base(buffer) + view.byteOffset + 4 * offset;
  }

  private base(buffer: SharedArrayBuffer): number {
    let base = this.baseAddress.get(buffer);
    if (base === undefined) {
      base = Number(this.koffi.address(new Uint8Array(buffer)));
      this.baseAddress.set(buffer, base);
    }
    return base;
  }
}

/**
 * Guards against a library whose cblas_sgemm_batch_strided has another ABI than the one declared above:
 * a 2-item batch with distinct strides must match two cblas_sgemm calls exactly.
 */
function agreesWithLoop(sgemm: CblasSgemm, batchStrided: CblasSgemmBatchStrided): boolean {
  const a = Float32Array.from({ length: 12 }, (_, i) => i + 1);
  const b = Float32Array.from({ length: 16 }, (_, i) => 2 - i / 4);
  const batched = new Float32Array(10).fill(7);
  const looped = new Float32Array(10).fill(7);
  try {
    batchStrided(ROW_MAJOR, NO_TRANS, TRANS, 2, 2, 3, 1.5, a, 3, 6, b, 4, 8, 0.5, batched, 2, 5, 2);
  } catch {
    return false;
  }
  for (let item = 0; item < 2; item++) {
    sgemm(ROW_MAJOR, NO_TRANS, TRANS, 2, 2, 3, 1.5, a.subarray(6 * item), 3, b.subarray(8 * item), 4, 0.5, looped.subarray(5 * item), 2);
  }
  return batched.every((v, i) => v === looped[i]);
}
