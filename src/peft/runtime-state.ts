import type { Rng } from '../tensor/random.js';

/**
 * State that every LoRA layer of one PeftModel shares and reads at each forward: which adapters are active,
 * whether adapters are switched off, training mode (dropout), and the generator for dropout masks.
 */
export interface LoraRuntimeState {
  activeAdapters: readonly string[];
  adaptersDisabled: boolean;
  training: boolean;
  readonly rng: Rng;
}

/** The adapter name that selects the base model for a row of a mixed batch. */
export const BASE_ADAPTER_NAME = '__base__';
