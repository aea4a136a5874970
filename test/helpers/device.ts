import { FUSED_KERNELS, type Backend } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { registerBackend } from '../../src/backend/registry.js';

/**
 * The device the parameterized suites run on: 'cpu' by default, 'cuda' with LORAFORGE_TEST_DEVICE=cuda
 * (npm run test:cuda on the GPU machine), 'cpu-primitives' for the CPU backend without its fused kernels, so
 * every op takes ops/'s composition of the primitive kernels (what a new backend starts from).
 */
export const TEST_DEVICE = process.env['LORAFORGE_TEST_DEVICE'] ?? 'cpu';

/** The device name of the CPU backend with every fused kernel (FUSED_KERNELS) hidden. */
export const PRIMITIVES_DEVICE = 'cpu-primitives';

/**
 * `inner` as a backend that has only the primitive kernels: every name in FUSED_KERNELS reads as absent (so
 * `backend.softmax` is undefined and ops/ composes it); everything else is inner's own, bound to it.
 */
export function primitivesOnly(inner: Backend): Backend {
  const hidden = new Set<PropertyKey>(FUSED_KERNELS);
  return new Proxy(inner, {
    get(target, prop) {
      if (hidden.has(prop)) return undefined;
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
    has(target, prop) {
      return !hidden.has(prop) && Reflect.has(target, prop);
    },
  });
}

let primitives: Backend | null = null;

/** Registers the 'cpu-primitives' device (a second CpuBackend, its buffers named for it) once. */
export function registerPrimitivesDevice(): Backend {
  if (!primitives) {
    primitives = primitivesOnly(new CpuBackend(PRIMITIVES_DEVICE));
    registerBackend(primitives);
  }
  return primitives;
}

export async function prepareTestDevice(): Promise<void> {
  if (TEST_DEVICE.startsWith('cuda')) {
    // Importing the package root registers the CUDA backend factory.
    await import('../../src/index.js');
  }
  if (TEST_DEVICE === PRIMITIVES_DEVICE) registerPrimitivesDevice();
}
