import { dirname } from 'node:path';
import koffi, { type LibraryHandle } from 'koffi';
import type { DType } from '../../tensor/dtype.js';
import { CudaUnavailableError, cudaLibraryDirs, libraryCandidates } from './libraries.js';
import type { LaunchProfiler } from './profiler.js';

type NativeFn = (...args: unknown[]) => number;

const CUBLAS_OP_N = 0;
const CUBLAS_OP_T = 1;
const CUBLAS_COMPUTE_32F = 68;
const CUBLAS_GEMM_DEFAULT = -1;

/** cudaDataType codes of the storage types cuBLAS multiplies. */
export function cublasDataType(dtype: DType): number {
  switch (dtype) {
    case 'float32':
      return 0;
    case 'float16':
      return 2;
    case 'bfloat16':
      return 14;
    default:
      throw new Error(`cuBLAS has no ${dtype} matrix multiply; cast to float32 or bfloat16 first.`);
  }
}

/** Column-major strided batched GEMM as cuBLAS sees it (the row-major swap happens in the caller). */
export interface ColumnMajorGemm {
  readonly transA: boolean;
  readonly transB: boolean;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly alpha: number;
  readonly a: number;
  readonly aType: DType;
  readonly lda: number;
  readonly strideA: number;
  readonly b: number;
  readonly bType: DType;
  readonly ldb: number;
  readonly strideB: number;
  readonly beta: number;
  readonly c: number;
  readonly cType: DType;
  readonly ldc: number;
  readonly strideC: number;
  readonly batch: number;
}

/** cuBLAS through koffi: one handle bound to one stream; float32 compute for every input type. */
export class Cublas {
  private readonly f: Record<string, NativeFn> = {};
  private readonly statusString: (status: number) => string;
  private readonly handle: number;
  private readonly alpha = new Float32Array(1);
  private readonly beta = new Float32Array(1);
  /** Set by CudaRuntime when LORAFORGE_PROFILE is on; GEMMs are timed while it records. */
  profiler: LaunchProfiler | null = null;

  constructor(readonly path: string, lib: LibraryHandle, stream: number) {
    const u64 = 'uint64_t';
    const p = 'void *';
    const bind = (name: string, args: string[]): void => {
      this.f[name] = lib.func(name, 'int', args) as NativeFn;
    };
    bind('cublasCreate_v2', [p]);
    bind('cublasSetStream_v2', [u64, u64]);
    bind('cublasGemmStridedBatchedEx', [
      u64, 'int', 'int', 'int', 'int', 'int', p, u64, 'int', 'int', 'int64_t', u64, 'int', 'int', 'int64_t', p, u64, 'int', 'int', 'int64_t', 'int', 'int', 'int',
    ]);
    this.statusString = lib.func('cublasGetStatusString', 'str', ['int']) as (status: number) => string;
    const out = new BigUint64Array(1);
    this.check('cublasCreate', this.f['cublasCreate_v2']!(out));
    this.handle = Number(out[0]!);
    this.check('cublasSetStream', this.f['cublasSetStream_v2']!(this.handle, stream));
  }

  private check(what: string, status: number): void {
    if (status !== 0) throw new Error(`cuBLAS call ${what} failed: ${this.statusString(status)}.`);
  }

  gemm(g: ColumnMajorGemm): void {
    this.alpha[0] = g.alpha;
    this.beta[0] = g.beta;
    const profile = this.profiler?.active ? this.profiler : null;
    // Column-major as cuBLAS sees it: m x n x k is the row-major product's n x m x k.
    profile?.begin(`gemm ${g.aType}->${g.cType} ${g.m}x${g.n}x${g.k}${g.batch > 1 ? ` batch ${g.batch}` : ''}${g.transA ? ' tA' : ''}${g.transB ? ' tB' : ''}`);
    const status = this.f['cublasGemmStridedBatchedEx']!(
      this.handle,
      g.transA ? CUBLAS_OP_T : CUBLAS_OP_N,
      g.transB ? CUBLAS_OP_T : CUBLAS_OP_N,
      g.m, g.n, g.k,
      this.alpha,
      g.a, cublasDataType(g.aType), g.lda, g.strideA,
      g.b, cublasDataType(g.bType), g.ldb, g.strideB,
      this.beta,
      g.c, cublasDataType(g.cType), g.ldc, g.strideC,
      g.batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT,
    );
    this.check('cublasGemmStridedBatchedEx', status);
    profile?.end();
  }
}

/** Loads cuBLAS (and cuBLASLt from the same folder first, so the dependency resolves by soname). */
export function openCublas(stream: number): Cublas {
  const dirs = cudaLibraryDirs();
  for (const path of libraryCandidates('libcublas', ['libcublas.so.13', 'libcublas.so.12', 'libcublas.so'], dirs)) {
    let lib: LibraryHandle;
    try {
      if (path.includes('/')) {
        for (const lt of libraryCandidates('libcublasLt', [], [dirname(path)])) {
          try {
            koffi.load(lt);
            break;
          } catch {
            // The loader may still find it through cuBLAS's own run path.
          }
        }
      }
      lib = koffi.load(path);
    } catch {
      continue;
    }
    return new Cublas(path, lib, stream);
  }
  throw new CudaUnavailableError(
    '--device cuda was requested but cuBLAS (libcublas.so) was not found; install the CUDA toolkit or the nvidia-cublas wheel, or set CUDA_HOME.',
  );
}
