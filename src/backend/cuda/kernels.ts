import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import type { DType } from '../../tensor/dtype.js';
import type { Driver } from './driver.js';
import type { Nvrtc } from './nvrtc.js';
import type { LaunchProfiler } from './profiler.js';

/** dtype codes the kernels switch on; must match DT_* in kernels/common.cuh. */
export const DTYPE_CODES: Readonly<Record<DType, number>> = { float32: 0, bfloat16: 1, float16: 2, int32: 3, int64: 4, uint8: 5 };

/** One .cu file under kernels/ per family; each is compiled (and cached) the first time one of its kernels runs. */
export const KERNEL_FAMILIES = ['elementwise', 'reduce', 'softmax', 'rmsnorm', 'rope', 'embedding', 'cross_entropy', 'adamw', 'nf4', 'random', 'attention', 'lora', 'kv_cache'] as const;
export type KernelFamily = (typeof KERNEL_FAMILIES)[number];

/** NVRTC options for every family: no FMA contraction, so float results round as the CPU reference's do. */
export const NVRTC_OPTIONS = ['--std=c++17', '--fmad=false'] as const;

/**
 * kernels/ beside this file when running from source; from dist/src/backend/cuda/ the sources stay in
 * src/backend/cuda/kernels/ of the package root (tsc does not copy .cu files, and package.json ships them).
 */
export function kernelSourceDir(): string {
  const candidates = [new URL('./kernels/', import.meta.url), new URL('../../../../src/backend/cuda/kernels/', import.meta.url)];
  for (const url of candidates) {
    const dir = fileURLToPath(url);
    if (existsSync(`${dir}common.cuh`)) return dir;
  }
  throw new Error(`The CUDA kernel sources (src/backend/cuda/kernels/*.cu) are missing next to ${fileURLToPath(import.meta.url)}; reinstall loraforge.`);
}

/** The source NVRTC compiles for a family: common.cuh, then the family's file (with #line so errors name the right line). */
export function kernelSource(family: KernelFamily, dir = kernelSourceDir()): string {
  const common = readFileSync(`${dir}common.cuh`, 'utf8');
  const body = readFileSync(`${dir}${family}.cu`, 'utf8');
  return `#line 1 "common.cuh"\n${common}\n#line 1 "${family}.cu"\n${body}`;
}

/** Compiles families on first use and looks up their kernels by name. */
export class KernelModules {
  private readonly modules = new Map<KernelFamily, number>();
  private readonly functions = new Map<string, number>();
  /** "family/name" by function handle, for profiles. */
  private readonly names = new Map<number, string>();
  private sourceDir: string | null = null;

  constructor(
    private readonly driver: Driver,
    private readonly nvrtc: Nvrtc,
    readonly arch: string,
  ) {}

  /** The source NVRTC sees (kernelSource). */
  source(family: KernelFamily): string {
    this.sourceDir ??= kernelSourceDir();
    return kernelSource(family, this.sourceDir);
  }

  private module(family: KernelFamily): number {
    let mod = this.modules.get(family);
    if (mod === undefined) {
      const cubin = this.nvrtc.compile(this.source(family), `${family}.cu`, this.arch, NVRTC_OPTIONS);
      mod = this.driver.moduleLoadData(cubin);
      this.modules.set(family, mod);
    }
    return mod;
  }

  fn(family: KernelFamily, name: string): number {
    const key = `${family}/${name}`;
    let f = this.functions.get(key);
    if (f === undefined) {
      f = this.driver.moduleGetFunction(this.module(family), name);
      this.functions.set(key, f);
      this.names.set(f, key);
    }
    return f;
  }

  /** "family/name" of a handle that fn() returned. */
  nameOf(fn: number): string {
    return this.names.get(fn) ?? `function@${fn}`;
  }
}

/** Kernels whose first argument is an op code (UNARY_CODES, BINARY_CODES, REDUCE_CODES): profiles name the op too. */
const OP_CODE_KERNELS: ReadonlySet<string> = new Set(['elementwise/unary', 'elementwise/binary_strided', 'reduce/reduce_rows', 'reduce/reduce_cols']);

/** The rank-8 Strided2 struct of common.cuh: shape, strides of a, strides of b (int64 each), rank (int32). */
const MAX_RANK = 8;
const STRIDED2_BYTES = 3 * MAX_RANK * 8 + 8;

const VALUE_BYTES = 4096;
const MAX_PARAMS = 64;
const TWO_32 = 2 ** 32;

/**
 * Kernel arguments packed for cuLaunchKernel's `void **kernelParams` in one native scratch block that lives
 * as long as the backend: values in 8-byte aligned slots, then the array of pointers to them. The driver
 * copies the values at launch, so the block is reused by the next launch at once; one launch costs one FFI
 * call and a few DataView writes, with no per-launch allocation.
 */
export class LaunchParams {
  private readonly view: DataView;
  /** The same value block as bytes. */
  private readonly raw: Uint8Array;
  private readonly base: number;
  private offset = 0;
  private count = 0;
  /** Set while a LaunchProfiler records (see CudaRuntime.profiler); kernel names come from `kernels`. */
  profiler: { readonly recorder: LaunchProfiler; readonly kernels: KernelModules } | null = null;

  constructor(
    private readonly driver: Driver,
    private readonly stream: number,
  ) {
    const block = koffi.alloc('uint8_t', VALUE_BYTES + MAX_PARAMS * 8) as bigint;
    this.base = Number(koffi.address(block));
    this.view = new DataView(koffi.view(block, VALUE_BYTES + MAX_PARAMS * 8));
    this.raw = new Uint8Array(this.view.buffer, this.view.byteOffset, VALUE_BYTES);
  }

  /** Starts a new argument list (discarding any left by a launch that threw before it was made). */
  begin(): this {
    this.offset = 0;
    this.count = 0;
    return this;
  }

  private slot(bytes: number): number {
    const at = this.offset;
    if (at + bytes > VALUE_BYTES || this.count >= MAX_PARAMS) throw new Error('Too many kernel arguments for one launch.');
    const address = this.base + at;
    const entry = VALUE_BYTES + this.count * 8;
    this.view.setUint32(entry, address % TWO_32, true);
    this.view.setUint32(entry + 4, Math.floor(address / TWO_32), true);
    this.count++;
    this.offset = at + Math.ceil(bytes / 8) * 8;
    return at;
  }

  private writeI64(at: number, value: number): void {
    if (value >= 0) {
      this.view.setUint32(at, value % TWO_32, true);
      this.view.setUint32(at + 4, Math.floor(value / TWO_32), true);
    } else {
      this.view.setBigInt64(at, BigInt(value), true);
    }
  }

  /** Device pointer (or any 64-bit handle). */
  ptr(value: number): this {
    this.writeI64(this.slot(8), value);
    return this;
  }

  i32(value: number): this {
    this.view.setInt32(this.slot(4), value, true);
    return this;
  }

  i64(value: number): this {
    this.writeI64(this.slot(8), value);
    return this;
  }

  f32(value: number): this {
    this.view.setFloat32(this.slot(4), value, true);
    return this;
  }

  f64(value: number): this {
    this.view.setFloat64(this.slot(8), value, true);
    return this;
  }

  /** A Strided2 struct by value; dims beyond `shape.length` are padded with size 1 and stride 0. */
  strided2(shape: readonly number[], a: readonly number[], b: readonly number[]): this {
    if (shape.length > MAX_RANK) throw new Error(`Strided kernels take at most ${MAX_RANK} dimensions after merging, got ${shape.length}.`);
    const at = this.slot(STRIDED2_BYTES);
    for (let d = 0; d < MAX_RANK; d++) {
      const inRange = d < shape.length;
      this.writeI64(at + d * 8, inRange ? shape[d]! : 1);
      this.writeI64(at + (MAX_RANK + d) * 8, inRange ? a[d]! : 0);
      this.writeI64(at + (2 * MAX_RANK + d) * 8, inRange ? b[d]! : 0);
    }
    this.view.setInt32(at + 3 * MAX_RANK * 8, shape.length, true);
    return this;
  }

  /** A struct by value: `bytes` as laid out for the kernel (8-byte aligned, as every slot is). */
  bytes(bytes: Uint8Array): this {
    this.raw.set(bytes, this.slot(bytes.length));
    return this;
  }

  /** Address of the `void *kernelParams[]` array that launch() passes (for callers that launch themselves). */
  get kernelParams(): number {
    return this.base + VALUE_BYTES;
  }

  /** Enqueues `fn` on the stream with the arguments written since begin(). */
  launch(fn: number, grid: readonly [number, number, number], block: readonly [number, number, number], sharedBytes = 0): void {
    const profile = this.profiler?.recorder.active ? this.profiler : null;
    if (profile) {
      const name = profile.kernels.nameOf(fn);
      // The op code is the first argument, an int32 in the first value slot.
      profile.recorder.begin(OP_CODE_KERNELS.has(name) ? `${name}:op=${this.view.getInt32(0, true)}` : name);
    }
    const rc = this.driver.cuLaunchKernel(fn, grid[0], grid[1], grid[2], block[0], block[1], block[2], sharedBytes, this.stream, this.kernelParams, 0);
    if (rc !== 0) this.driver.fail('cuLaunchKernel', rc);
    profile?.recorder.end();
  }
}
