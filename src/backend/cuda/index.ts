import { registerBackendFactory } from '../registry.js';
import { CudaBackend } from './cuda-backend.js';
import { findDriverLibrary } from './driver.js';
import { NO_DRIVER_MESSAGE } from './libraries.js';

export { CudaBackend } from './cuda-backend.js';
export type { AllocatorStats } from './allocator.js';
export type { CudaDeviceInfo, CudaLibraries } from './runtime.js';
export { CudaUnavailableError } from './libraries.js';

/**
 * Registers a lazy factory for 'cuda' and 'cuda:N' ('cuda' is device 0): nothing touches the driver until a tensor asks for the
 * device, and a machine without one then gets CudaUnavailableError with one sentence for a person.
 */
export function registerCudaBackend(): void {
  registerBackendFactory('cuda', (device) => {
    const ordinal = device === 'cuda' ? 0 : Number(device.slice('cuda:'.length));
    if (!Number.isInteger(ordinal) || ordinal < 0) throw new Error(`Device "${device}" is not a CUDA device name; use "cuda" or "cuda:N".`);
    return new CudaBackend(device, ordinal);
  });
}

/** null when a CUDA driver library loads on this machine, else the sentence a person would see. */
export function cudaDriverMissingReason(): string | null {
  return findDriverLibrary() ? null : NO_DRIVER_MESSAGE;
}

