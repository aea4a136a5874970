import type { DeviceBuffer } from '../../tensor/buffer.js';
import { CudaBuffer } from './cuda-buffer.js';
import { DTYPE_CODES } from './kernels.js';
import type { CudaRuntime } from './runtime.js';

/** What a random fill draws (kernels/random.cu states the generator). */
export type RandomDistribution =
  | { readonly kind: 'uniform'; readonly low: number; readonly high: number }
  | { readonly kind: 'normal'; readonly mean: number; readonly std: number }
  /** Uniform bytes 0..255 into a uint8 buffer (packed 4-bit codes, 8-bit scale codes). */
  | { readonly kind: 'bytes' };

const THREADS = 256;
const MAX_SEED = 2 ** 53;

/**
 * Fills `length` elements of a CUDA buffer from element 0 with counter-based random values on the device: no
 * host data, and the same values for the same seed on any GPU. For building models with random weights of real
 * shapes (benchmarks) without a file or a host copy.
 */
export function cudaRandomFill(runtime: CudaRuntime, buffer: DeviceBuffer, length: number, seed: number, dist: RandomDistribution): void {
  if (!(buffer instanceof CudaBuffer)) throw new Error(`cudaRandomFill needs a CUDA buffer, got one on ${buffer.device}.`);
  if (length < 0 || length > buffer.length) throw new Error(`cudaRandomFill: ${length} elements do not fit a buffer of ${buffer.length}.`);
  if (!Number.isInteger(seed) || seed < 0 || seed >= MAX_SEED) throw new Error(`cudaRandomFill: the seed must be an integer in [0, 2^53), got ${seed}.`);
  if (length === 0) return;
  runtime.makeCurrent();
  const grid: [number, number, number] = [Math.max(1, Math.min(Math.ceil(length / THREADS), runtime.info.multiprocessors * 16)), 1, 1];
  const args = runtime.params.begin();
  switch (dist.kind) {
    case 'bytes':
      if (buffer.dtype !== 'uint8') throw new Error(`cudaRandomFill: random bytes need a uint8 buffer, got ${buffer.dtype}.`);
      args.ptr(buffer.at(0)).i64(length).i64(seed);
      args.launch(runtime.kernels.fn('random', 'random_bytes'), grid, [THREADS, 1, 1]);
      return;
    case 'uniform':
      args.ptr(buffer.at(0)).i32(DTYPE_CODES[buffer.dtype]).i64(length).i64(seed).f32(dist.low).f32(dist.high);
      args.launch(runtime.kernels.fn('random', 'random_uniform'), grid, [THREADS, 1, 1]);
      return;
    case 'normal':
      args.ptr(buffer.at(0)).i32(DTYPE_CODES[buffer.dtype]).i64(length).i64(seed).f32(dist.mean).f32(dist.std);
      args.launch(runtime.kernels.fn('random', 'random_normal'), grid, [THREADS, 1, 1]);
      return;
  }
}
