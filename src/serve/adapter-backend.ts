/**
 * Where adapter weights live while they are served. Implementations attach and detach LoRA weights on the one
 * shared base model; calls arrive one at a time, between forward passes.
 */
export interface AdapterBackend {
  /** Loads the PEFT adapter in `dir` as `name`; rejects with a message a person can act on when it cannot. */
  load(name: string, dir: string): Promise<void>;
  /** Frees the adapter's weights; `name` is loaded. */
  unload(name: string): Promise<void>;
}

/** The name that selects the base model for a row (PEFT's mixed-batch convention). */
export const BASE_ROW = '__base__';
