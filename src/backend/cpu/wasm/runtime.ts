/**
 * The part of the WebAssembly JavaScript API that the CPU kernels use. Node provides it as a global; TypeScript
 * declares it only with the "dom" library, which this project does not load.
 */

/** A compiled module: compile once, instantiate once per thread. */
export interface CompiledModule {
  readonly compiledModule: unique symbol;
}

interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => CompiledModule;
  Instance: new (module: CompiledModule, imports: Record<string, never>) => { readonly exports: Record<string, unknown> };
  validate(bytes: Uint8Array): boolean;
}

const api = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

export function compileModule(bytes: Uint8Array): CompiledModule {
  return new api.Module(bytes);
}

export function validateModule(bytes: Uint8Array): boolean {
  return api.validate(bytes);
}

/** An instance's exports: its functions by name and its memory's bytes. */
export interface InstanceExports {
  readonly functions: ReadonlyMap<string, (...args: number[]) => number | undefined>;
  readonly memory: ArrayBuffer;
}

export function instantiate(module: CompiledModule): InstanceExports {
  const { exports } = new api.Instance(module, {});
  const functions = new Map<string, (...args: number[]) => number | undefined>();
  let memory: ArrayBuffer | undefined;
  for (const [name, value] of Object.entries(exports)) {
    if (typeof value === 'function') functions.set(name, value as (...args: number[]) => number | undefined);
    else if (name === 'memory') memory = (value as { buffer: ArrayBuffer }).buffer;
  }
  if (!memory) throw new Error('WebAssembly module exports no memory named "memory".');
  return { functions, memory };
}
