import type { Tensor } from '../tensor/tensor.js';
import { DoraVariant } from './dora.js';
import type { LoraAdapterSettings, LoraAdapterWeights, LoraLinear } from './lora-linear.js';

/** A merged weight and what unmergedWeight needs to undo it exactly (DoRA: the row norms at merge time), or null. */
export interface MergedWeight {
  readonly weight: Tensor;
  readonly mergeState: Tensor | null;
}

/**
 * How a LoRA variant (PEFT's LoraVariant: DoRA) changes one adapter of a LoraLinear, which calls it in place of the
 * plain path: scaling * B A x in forward, W + scaling * B A when merging. Variants keep no state of their own.
 */
export interface LoraVariant {
  readonly name: string;
  /** Registers the variant's tensors for `adapter`, after its lora_A and lora_B (DoRA: the magnitude). */
  init(layer: LoraLinear, adapter: string, weights: LoraAdapterWeights): void;
  /**
   * The adapter's term that forward adds to `result` (the base output and earlier adapters'), from the adapter's
   * input x (dropped out where `droppedOut`) and lora = B A x, unscaled.
   */
  forward(layer: LoraLinear, adapter: string, x: Tensor, droppedOut: boolean, lora: Tensor, result: Tensor): Tensor;
  /** The weight merging writes, from updated = W + scaling * B A in float32 (safe and unsafe merge alike). */
  mergedWeight(layer: LoraLinear, adapter: string, updated: Tensor): MergedWeight;
  /** mergedWeight's inverse: the merged float32 weight back to W + scaling * B A, given its mergeState. */
  unmergedWeight(layer: LoraLinear, adapter: string, weight: Tensor, mergeState: Tensor | null): Tensor;
}

const DORA = new DoraVariant();

/** The variant an adapter's settings ask for, or null for plain LoRA (PEFT's resolve_lora_variant). */
export function resolveLoraVariant(settings: LoraAdapterSettings): LoraVariant | null {
  return settings.useDora ? DORA : null;
}
