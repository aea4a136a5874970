import koffi, { type LibraryHandle } from 'koffi';
import { CudaUnavailableError, NO_DRIVER_MESSAGE, cudaLibraryDirs, libraryCandidates } from './libraries.js';

/**
 * koffi bindings to the CUDA driver API. Handles (CUcontext, CUstream, CUmodule, CUfunction, CUevent) and
 * device pointers travel as plain numbers: x86-64 addresses fit in 53 bits, and numbers avoid a BigInt per
 * call. Out-parameters are typed arrays that koffi passes by address.
 */
type NativeFn = (...args: unknown[]) => number;

export const CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
export const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
export const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
/** cuFuncSetAttribute: the dynamic shared memory a kernel may be launched with (above 48 KiB only when set). */
export const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
const CU_MEMHOSTALLOC_DEVICEMAP = 0x02;
const CU_EVENT_DEFAULT = 0;
const CU_EVENT_DISABLE_TIMING = 0x02;
const CU_STREAM_NON_BLOCKING = 0x01;
const CUDA_ERROR_OUT_OF_MEMORY = 2;

export class CudaError extends Error {
  override readonly name = 'CudaError';
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

export interface PinnedHostMemory {
  /** Host address; also valid on the device (unified addressing, mapped with DEVICEMAP). */
  readonly hostPtr: number;
  readonly devicePtr: number;
  readonly bytes: number;
  /** The pinned bytes as seen from JavaScript (no copy). */
  readonly view: ArrayBuffer;
}

function loadFirst(candidates: readonly string[]): { lib: LibraryHandle; path: string } | null {
  for (const path of candidates) {
    try {
      return { lib: koffi.load(path), path };
    } catch {
      // Try the next candidate: a missing file and a wrong architecture fail alike.
    }
  }
  return null;
}

let loadedDriver: { lib: LibraryHandle; path: string } | null | undefined;

/** The driver library, or null when this machine has none. Loaded once. */
export function findDriverLibrary(): { lib: LibraryHandle; path: string } | null {
  if (loadedDriver === undefined) loadedDriver = loadFirst(libraryCandidates('libcuda', ['libcuda.so.1'], cudaLibraryDirs()));
  return loadedDriver;
}

export class Driver {
  private readonly u64 = new BigUint64Array(1);
  private readonly i32 = new Int32Array(2);
  private readonly f32 = new Float32Array(1);
  private readonly f: Record<string, NativeFn> = {};

  readonly cuLaunchKernel: NativeFn;
  readonly cuMemcpyHtoDAsync: NativeFn;
  readonly cuMemcpyDtoHAsync: NativeFn;
  readonly cuMemcpyDtoDAsync: NativeFn;
  readonly cuMemsetD8Async: NativeFn;
  readonly cuMemsetD16Async: NativeFn;
  readonly cuMemsetD32Async: NativeFn;

  constructor(readonly lib: LibraryHandle, readonly path: string) {
    const u64 = 'uint64_t';
    const p = 'void *';
    this.bind('cuInit', ['uint32_t']);
    this.bind('cuDriverGetVersion', [p]);
    this.bind('cuGetErrorName', ['int', p]);
    this.bind('cuGetErrorString', ['int', p]);
    this.bind('cuDeviceGetCount', [p]);
    this.bind('cuDeviceGet', [p, 'int']);
    this.bind('cuDeviceGetAttribute', [p, 'int', 'int']);
    this.bind('cuDeviceGetName', [p, 'int', 'int']);
    this.bind(['cuDeviceTotalMem_v2', 'cuDeviceTotalMem'], [p, 'int']);
    this.bind('cuDevicePrimaryCtxRetain', [p, 'int']);
    this.bind('cuCtxSetCurrent', [u64]);
    this.bind(['cuMemGetInfo_v2', 'cuMemGetInfo'], [p, p]);
    this.bind(['cuMemAlloc_v2', 'cuMemAlloc'], [p, 'size_t']);
    this.bind(['cuMemFree_v2', 'cuMemFree'], [u64]);
    this.bind('cuMemHostAlloc', [p, 'size_t', 'uint32_t']);
    this.bind('cuMemFreeHost', [u64]);
    this.bind(['cuMemHostGetDevicePointer_v2', 'cuMemHostGetDevicePointer'], [p, u64, 'uint32_t']);
    this.bind(['cuMemcpyHtoDAsync_v2', 'cuMemcpyHtoDAsync'], [u64, p, 'size_t', u64]);
    this.bind(['cuMemcpyDtoHAsync_v2', 'cuMemcpyDtoHAsync'], [p, u64, 'size_t', u64]);
    this.bind(['cuMemcpyDtoDAsync_v2', 'cuMemcpyDtoDAsync'], [u64, u64, 'size_t', u64]);
    this.bind('cuMemsetD8Async', [u64, 'uint8_t', 'size_t', u64]);
    this.bind('cuMemsetD16Async', [u64, 'uint16_t', 'size_t', u64]);
    this.bind('cuMemsetD32Async', [u64, 'uint32_t', 'size_t', u64]);
    this.bind('cuStreamCreate', [p, 'uint32_t']);
    this.bind('cuStreamSynchronize', [u64]);
    this.bind('cuStreamWaitEvent', [u64, u64, 'uint32_t']);
    // Host addresses as integers, for copies between device memory and pinned host memory at an offset.
    this.bind(['cuMemcpyHtoDAsync_v2', 'cuMemcpyHtoDAsync'], [u64, u64, 'size_t', u64], 'cuMemcpyHtoDAsyncAddress');
    this.bind(['cuMemcpyDtoHAsync_v2', 'cuMemcpyDtoHAsync'], [u64, u64, 'size_t', u64], 'cuMemcpyDtoHAsyncAddress');
    this.bind('cuEventCreate', [p, 'uint32_t']);
    this.bind(['cuEventDestroy_v2', 'cuEventDestroy'], [u64]);
    this.bind('cuEventRecord', [u64, u64]);
    this.bind('cuEventSynchronize', [u64]);
    this.bind(['cuEventElapsedTime_v2', 'cuEventElapsedTime'], [p, u64, u64]);
    this.bind('cuModuleLoadData', [p, p]);
    this.bind('cuModuleGetFunction', [p, u64, 'str']);
    this.bind('cuFuncSetAttribute', [u64, 'int', 'int']);
    this.bind('cuLaunchKernel', [u64, 'uint32_t', 'uint32_t', 'uint32_t', 'uint32_t', 'uint32_t', 'uint32_t', 'uint32_t', u64, u64, u64]);
    this.cuLaunchKernel = this.f['cuLaunchKernel']!;
    this.cuMemcpyHtoDAsync = this.f['cuMemcpyHtoDAsync']!;
    this.cuMemcpyDtoHAsync = this.f['cuMemcpyDtoHAsync']!;
    this.cuMemcpyDtoDAsync = this.f['cuMemcpyDtoDAsync']!;
    this.cuMemsetD8Async = this.f['cuMemsetD8Async']!;
    this.cuMemsetD16Async = this.f['cuMemsetD16Async']!;
    this.cuMemsetD32Async = this.f['cuMemsetD32Async']!;
  }

  /** Binds the first of `names` that the library exports, under `key` (default: the last, unversioned name). */
  private bind(names: string | readonly string[], args: readonly string[], key?: string): void {
    const list = typeof names === 'string' ? [names] : names;
    let lastError: unknown;
    for (const name of list) {
      try {
        this.f[key ?? list[list.length - 1]!] = this.lib.func(name, 'int', [...args]) as NativeFn;
        return;
      } catch (e) {
        lastError = e;
      }
    }
    throw new CudaUnavailableError(`The CUDA driver at ${this.path} lacks ${list.join(' / ')} (${String(lastError)}); update the NVIDIA driver.`);
  }

  private call(name: string, ...args: unknown[]): void {
    const rc = this.f[name]!(...args);
    if (rc !== 0) this.fail(name, rc);
  }

  /** Throws a CudaError naming the call and the driver's description of `rc`. */
  fail(what: string, rc: number): never {
    throw new CudaError(`CUDA driver call ${what} failed: ${this.describe(rc)}.`, rc);
  }

  describe(rc: number): string {
    const ptr = new BigUint64Array(1);
    let name = `error ${rc}`;
    let text = '';
    if (this.f['cuGetErrorName']!(rc, ptr) === 0 && ptr[0] !== 0n) name = koffi.decode.string(ptr[0]);
    if (this.f['cuGetErrorString']!(rc, ptr) === 0 && ptr[0] !== 0n) text = koffi.decode.string(ptr[0]);
    return text ? `${name} (${text})` : name;
  }

  check(what: string, rc: number): void {
    if (rc !== 0) this.fail(what, rc);
  }

  private outU64(name: string, ...rest: unknown[]): number {
    this.call(name, this.u64, ...rest);
    return Number(this.u64[0]!);
  }

  private outI32(name: string, ...rest: unknown[]): number {
    this.call(name, this.i32, ...rest);
    return this.i32[0]!;
  }

  /** cuInit's result code: 0 when a driver and at least one usable GPU answered. */
  initResult(): number {
    return this.f['cuInit']!(0);
  }

  driverVersion(): number {
    return this.outI32('cuDriverGetVersion');
  }

  deviceCount(): number {
    return this.outI32('cuDeviceGetCount');
  }

  device(ordinal: number): number {
    return this.outI32('cuDeviceGet', ordinal);
  }

  attribute(device: number, attribute: number): number {
    return this.outI32('cuDeviceGetAttribute', attribute, device);
  }

  deviceName(device: number): string {
    const buf = Buffer.alloc(256);
    this.call('cuDeviceGetName', buf, buf.length, device);
    return buf.toString('utf8', 0, buf.indexOf(0));
  }

  totalMemory(device: number): number {
    return this.outU64('cuDeviceTotalMem', device);
  }

  retainPrimaryContext(device: number): number {
    return this.outU64('cuDevicePrimaryCtxRetain', device);
  }

  setCurrent(context: number): void {
    this.call('cuCtxSetCurrent', context);
  }

  memInfo(): { free: number; total: number } {
    const free = new BigUint64Array(1);
    const total = new BigUint64Array(1);
    this.call('cuMemGetInfo', free, total);
    return { free: Number(free[0]!), total: Number(total[0]!) };
  }

  /** Device memory, or null when the driver reports out of memory (other failures throw). */
  memAlloc(bytes: number): number | null {
    const rc = this.f['cuMemAlloc']!(this.u64, bytes);
    if (rc === CUDA_ERROR_OUT_OF_MEMORY) return null;
    this.check('cuMemAlloc', rc);
    return Number(this.u64[0]!);
  }

  memFree(ptr: number): void {
    this.call('cuMemFree', ptr);
  }

  /** Page-locked host memory mapped into the device's address space (never managed memory). */
  hostAlloc(bytes: number): PinnedHostMemory {
    const hostPtr = this.outU64('cuMemHostAlloc', bytes, CU_MEMHOSTALLOC_DEVICEMAP);
    const devicePtr = this.outU64('cuMemHostGetDevicePointer', hostPtr, 0);
    return { hostPtr, devicePtr, bytes, view: koffi.view(BigInt(hostPtr), bytes) };
  }

  hostFree(memory: PinnedHostMemory): void {
    this.call('cuMemFreeHost', memory.hostPtr);
  }

  streamCreate(): number {
    return this.outU64('cuStreamCreate', 0);
  }

  streamSynchronize(stream: number): void {
    this.call('cuStreamSynchronize', stream);
  }

  /** A stream that does not synchronise with the legacy default stream (side streams for copies). */
  streamCreateNonBlocking(): number {
    return this.outU64('cuStreamCreate', CU_STREAM_NON_BLOCKING);
  }

  /** Work queued on `stream` after this call waits until `event`'s latest record has completed. */
  streamWaitEvent(stream: number, event: number): void {
    this.call('cuStreamWaitEvent', stream, event, 0);
  }

  eventCreate(): number {
    return this.outU64('cuEventCreate', CU_EVENT_DEFAULT);
  }

  /** An event for ordering only (no timestamps, so recording and waiting cost less). */
  eventCreateForOrdering(): number {
    return this.outU64('cuEventCreate', CU_EVENT_DISABLE_TIMING);
  }

  /** Queues a copy of `bytes` from host address `src` (pinned memory, so the copy is truly asynchronous). */
  memcpyHtoDAsync(dst: number, src: number, bytes: number, stream: number): void {
    this.call('cuMemcpyHtoDAsyncAddress', dst, src, bytes, stream);
  }

  /** Queues a copy of `bytes` to host address `dst` (pinned memory). */
  memcpyDtoHAsync(dst: number, src: number, bytes: number, stream: number): void {
    this.call('cuMemcpyDtoHAsyncAddress', dst, src, bytes, stream);
  }

  eventDestroy(event: number): void {
    this.call('cuEventDestroy', event);
  }

  eventRecord(event: number, stream: number): void {
    this.call('cuEventRecord', event, stream);
  }

  eventSynchronize(event: number): void {
    this.call('cuEventSynchronize', event);
  }

  /** Milliseconds between two recorded events. */
  eventElapsedMs(start: number, end: number): number {
    this.call('cuEventElapsedTime', this.f32, start, end);
    return this.f32[0]!;
  }

  moduleLoadData(image: Uint8Array): number {
    return this.outU64('cuModuleLoadData', image);
  }

  moduleGetFunction(module: number, name: string): number {
    return this.outU64('cuModuleGetFunction', module, name);
  }

  /** Sets a kernel's CU_FUNC_ATTRIBUTE_* `attribute` to `value`. */
  funcSetAttribute(fn: number, attribute: number, value: number): void {
    this.call('cuFuncSetAttribute', fn, attribute, value);
  }
}

/** Loads and initialises the driver, or throws CudaUnavailableError with one sentence for a person. */
export function openDriver(): Driver {
  const found = findDriverLibrary();
  if (!found) throw new CudaUnavailableError(NO_DRIVER_MESSAGE);
  const driver = new Driver(found.lib, found.path);
  const rc = driver.initResult();
  if (rc !== 0) {
    throw new CudaUnavailableError(
      `--device cuda was requested but the CUDA driver at ${found.path} could not start (${driver.describe(rc)}); check that a GPU is visible (nvidia-smi) or use --device cpu.`,
    );
  }
  if (driver.deviceCount() === 0) {
    throw new CudaUnavailableError('--device cuda was requested but the CUDA driver sees no GPU; check nvidia-smi or use --device cpu.');
  }
  return driver;
}
