import { CachingAllocator } from './allocator.js';
import { openCublas, type Cublas } from './cublas.js';
import {
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
  CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
  openDriver,
  type Driver,
  type PinnedHostMemory,
} from './driver.js';
import { KernelModules, LaunchParams } from './kernels.js';
import { openNvrtc } from './nvrtc.js';
import { LaunchProfiler } from './profiler.js';

/** Where the libraries in use were loaded from (for diagnostics). */
export interface CudaLibraries {
  readonly driver: string;
  readonly driverVersion: number;
  readonly nvrtc: string;
  readonly nvrtcVersion: string;
  readonly cublas: string;
}

export interface CudaDeviceInfo {
  readonly ordinal: number;
  readonly name: string;
  /** e.g. '9.0' */
  readonly computeCapability: string;
  readonly multiprocessors: number;
  /** Bytes. */
  readonly totalMemory: number;
}

/** Status codes kernels write into the host-visible status word; must match STATUS_* in kernels/common.cuh. */
const STATUS_EMBEDDING_ID = 1;
const STATUS_LABEL = 2;

let sharedDriver: Driver | null = null;
const runtimes = new Map<number, CudaRuntime>();
/** The runtime whose context is current on the (single JavaScript) thread. */
let currentRuntime: CudaRuntime | null = null;

/**
 * Everything one GPU needs, made once per device ordinal: the primary context (shared with any other CUDA user
 * in the process), one stream that orders all work, the caching allocator, cuBLAS bound to the stream, NVRTC
 * kernel modules, the launch-argument block, and a status word in mapped pinned memory through which kernels
 * report bad input (an out-of-range token id or label) without a synchronisation per launch.
 */
export class CudaRuntime {
  readonly info: CudaDeviceInfo;
  readonly libraries: CudaLibraries;
  readonly context: number;
  readonly stream: number;
  readonly allocator: CachingAllocator;
  readonly cublas: Cublas;
  readonly kernels: KernelModules;
  readonly params: LaunchParams;
  /** Per-launch device timing, present when LORAFORGE_PROFILE=1; records between start() and report(). */
  readonly profiler: LaunchProfiler | null;
  /**
   * Milliseconds the host has spent blocked on the device in CudaBackend.toHost and synchronize since the runtime
   * was made: a decode step that waits ~0 is host-bound, one that waits long is bound by its kernels.
   */
  hostWaitMs = 0;
  private readonly status: PinnedHostMemory;
  private readonly statusWords: Int32Array;

  private constructor(
    readonly driver: Driver,
    ordinal: number,
  ) {
    const count = driver.deviceCount();
    if (ordinal < 0 || ordinal >= count) {
      throw new Error(`CUDA device ${ordinal} was requested but this machine has ${count} GPU${count === 1 ? '' : 's'} (cuda:0${count > 1 ? ` to cuda:${count - 1}` : ''}).`);
    }
    const device = driver.device(ordinal);
    const major = driver.attribute(device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
    const minor = driver.attribute(device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
    this.info = {
      ordinal,
      name: driver.deviceName(device),
      computeCapability: `${major}.${minor}`,
      multiprocessors: driver.attribute(device, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
      totalMemory: driver.totalMemory(device),
    };
    this.context = driver.retainPrimaryContext(device);
    driver.setCurrent(this.context);
    currentRuntime = this;
    this.stream = driver.streamCreate();
    this.allocator = new CachingAllocator(driver);
    this.cublas = openCublas(this.stream);
    const nvrtc = openNvrtc();
    this.kernels = new KernelModules(driver, nvrtc, `sm_${major}${minor}`);
    this.libraries = { driver: driver.path, driverVersion: driver.driverVersion(), nvrtc: nvrtc.path, nvrtcVersion: nvrtc.version, cublas: this.cublas.path };
    this.params = new LaunchParams(driver, this.stream);
    this.profiler = process.env['LORAFORGE_PROFILE'] === '1' ? new LaunchProfiler(driver, this.stream) : null;
    if (this.profiler) {
      this.params.profiler = { recorder: this.profiler, kernels: this.kernels };
      this.cublas.profiler = this.profiler;
    }
    this.status = driver.hostAlloc(16);
    this.statusWords = new Int32Array(this.status.view);
    this.statusWords.fill(0);
  }

  /** The runtime of device `ordinal`, created on first use; throws CudaUnavailableError without a driver. */
  static forDevice(ordinal: number): CudaRuntime {
    let rt = runtimes.get(ordinal);
    if (!rt) {
      sharedDriver ??= openDriver();
      rt = new CudaRuntime(sharedDriver, ordinal);
      runtimes.set(ordinal, rt);
    }
    return rt;
  }

  /** Device address of the status word that kernels taking `status` write to. */
  get statusPtr(): number {
    return this.status.devicePtr;
  }

  /** Makes this device's context current before its work is queued (matters once a process uses two GPUs). */
  makeCurrent(): void {
    if (currentRuntime === this) return;
    this.driver.setCurrent(this.context);
    currentRuntime = this;
  }

  /** Waits for all queued work, then raises any error a kernel reported. */
  synchronize(): void {
    this.driver.streamSynchronize(this.stream);
    this.checkStatus();
  }

  private checkStatus(): void {
    const code = this.statusWords[0]!;
    if (code === 0) return;
    const [, a, b, c] = this.statusWords;
    this.statusWords.fill(0);
    if (code === STATUS_EMBEDDING_ID) {
      throw new Error(`Token id ${a} is outside the embedding table of ${b} rows; check the tokenizer matches the model.`);
    }
    if (code === STATUS_LABEL) {
      throw new Error(`Label ${a} is outside the vocabulary of ${b}; use ${c} for positions without a target.`);
    }
    throw new Error(`A CUDA kernel reported status ${code} (${a}, ${b}, ${c}).`);
  }
}
