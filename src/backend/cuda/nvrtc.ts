import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import koffi, { type LibraryHandle } from 'koffi';
import { CudaUnavailableError, cudaLibraryDirs, libraryCandidates } from './libraries.js';

type NativeFn = (...args: unknown[]) => number;

/** Raised when a kernel source does not compile; the message carries NVRTC's log. */
export class KernelCompileError extends Error {
  override readonly name = 'KernelCompileError';
}

/** Where compiled kernels are kept: $XDG_CACHE_HOME/loraforge/kernels or ~/.cache/loraforge/kernels. */
export function kernelCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env['XDG_CACHE_HOME'] || join(homedir(), '.cache');
  return join(base, 'loraforge', 'kernels');
}

/**
 * NVRTC through koffi: compiles CUDA C++ to a cubin for one architecture (sm_XX), cached on disk under
 * sha256(source, architecture, options, NVRTC version) so that a second process loads it without compiling.
 */
export class Nvrtc {
  private readonly f: Record<string, NativeFn> = {};
  private readonly errorString: (rc: number) => string;
  readonly version: string;

  constructor(readonly path: string, lib: LibraryHandle) {
    const p = 'void *';
    const u64 = 'uint64_t';
    const bind = (name: string, args: string[]): void => {
      this.f[name] = lib.func(name, 'int', args) as NativeFn;
    };
    bind('nvrtcVersion', [p, p]);
    bind('nvrtcCreateProgram', [p, 'str', 'str', 'int', p, p]);
    bind('nvrtcCompileProgram', [u64, 'int', 'const char **']);
    bind('nvrtcGetProgramLogSize', [u64, p]);
    bind('nvrtcGetProgramLog', [u64, p]);
    bind('nvrtcGetCUBINSize', [u64, p]);
    bind('nvrtcGetCUBIN', [u64, p]);
    bind('nvrtcDestroyProgram', [p]);
    this.errorString = lib.func('nvrtcGetErrorString', 'str', ['int']) as (rc: number) => string;
    const major = new Int32Array(1);
    const minor = new Int32Array(1);
    this.check('nvrtcVersion', this.f['nvrtcVersion']!(major, minor));
    this.version = `${major[0]}.${minor[0]}`;
  }

  private check(what: string, rc: number): void {
    if (rc !== 0) {
      throw new KernelCompileError(`NVRTC call ${what} failed: ${this.errorString(rc)}.`);
    }
  }

  /** A cubin for `arch` (e.g. 'sm_90'), from the disk cache when present. `name` labels errors only. */
  compile(source: string, name: string, arch: string, options: readonly string[]): Uint8Array {
    const allOptions = [`--gpu-architecture=${arch}`, ...options];
    const key = createHash('sha256').update(source).update('\0').update(arch).update('\0').update(allOptions.join(' ')).update('\0').update(this.version).digest('hex');
    const dir = kernelCacheDir();
    const file = join(dir, `${key}.cubin`);
    try {
      return readFileSync(file);
    } catch {
      // Not cached yet (or unreadable): compile below.
    }
    const cubin = this.compileUncached(source, name, allOptions);
    try {
      mkdirSync(dir, { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, cubin);
      renameSync(tmp, file);
    } catch {
      // A read-only or full cache only costs a recompile next time.
    }
    return cubin;
  }

  private compileUncached(source: string, name: string, options: readonly string[]): Uint8Array {
    const handle = new BigUint64Array(1);
    this.check('nvrtcCreateProgram', this.f['nvrtcCreateProgram']!(handle, source, name, 0, null, null));
    const prog = Number(handle[0]!);
    try {
      const rc = this.f['nvrtcCompileProgram']!(prog, options.length, [...options]);
      if (rc !== 0) {
        throw new KernelCompileError(`CUDA kernel ${name} failed to compile with NVRTC ${this.version} (${options.join(' ')}):\n${this.log(prog)}`);
      }
      const size = new BigUint64Array(1);
      this.check('nvrtcGetCUBINSize', this.f['nvrtcGetCUBINSize']!(prog, size));
      const cubin = Buffer.alloc(Number(size[0]!));
      this.check('nvrtcGetCUBIN', this.f['nvrtcGetCUBIN']!(prog, cubin));
      return cubin;
    } finally {
      this.f['nvrtcDestroyProgram']!(handle);
    }
  }

  private log(prog: number): string {
    const size = new BigUint64Array(1);
    if (this.f['nvrtcGetProgramLogSize']!(prog, size) !== 0) return '(no log)';
    const buf = Buffer.alloc(Number(size[0]!));
    if (this.f['nvrtcGetProgramLog']!(prog, buf) !== 0) return '(no log)';
    const end = buf.indexOf(0);
    return buf.toString('utf8', 0, end < 0 ? buf.length : end).trim();
  }
}

export function openNvrtc(): Nvrtc {
  const candidates = libraryCandidates('libnvrtc', ['libnvrtc.so.13', 'libnvrtc.so.12', 'libnvrtc.so'], cudaLibraryDirs());
  for (const path of candidates) {
    let lib: LibraryHandle;
    try {
      lib = koffi.load(path);
    } catch {
      continue;
    }
    return new Nvrtc(path, lib);
  }
  throw new CudaUnavailableError(
    '--device cuda was requested but NVRTC (libnvrtc.so) was not found; install the CUDA toolkit or the nvidia-cuda-nvrtc wheel, or set CUDA_HOME.',
  );
}
