import type { Backend } from './backend.js';

/** Backends by device name. The CPU backend registers itself; CUDA registers when first requested. */
const backends = new Map<string, Backend>();
const factories = new Map<string, (device: string) => Backend>();

export function registerBackend(backend: Backend): void {
  backends.set(backend.device, backend);
}

export function registerBackendFactory(device: string, factory: (device: string) => Backend): void {
  factories.set(device, factory);
}

/** A family's factory ('cuda') serves every ordinal of it ('cuda:1'); it receives the exact name. */
export function getBackend(device: string): Backend {
  const found = backends.get(device);
  if (found) return found;
  const family = device.split(':')[0]!;
  const factory = factories.get(device) ?? factories.get(family);
  if (!factory) {
    throw new Error(`Unknown device "${device}"; use "cpu" or "cuda".`);
  }
  const created = factory(device);
  backends.set(device, created);
  return created;
}
