/** Hugging Face's `optim` names this library implements (transformers' OptimizerNames). */
export const OPTIM_NAMES = ['adamw_torch', 'adamw_torch_fused', 'paged_adamw_32bit'] as const;
export type OptimName = (typeof OPTIM_NAMES)[number];

/**
 * What an `optim` name means here: adamw_torch and adamw_torch_fused are torch's AdamW (the fused kernel computes
 * the same update), paged_adamw_32bit is AdamW with its float32 moments paged between host and device
 * (paged-state.ts; on the CPU the moments are host memory already). Any other name is refused.
 */
export function optimizerSettings(name: string): { paged: boolean } {
  if (!(OPTIM_NAMES as readonly string[]).includes(name)) throw new Error(`optim "${name}" is not supported; use one of ${OPTIM_NAMES.join(', ')}.`);
  return { paged: name === 'paged_adamw_32bit' };
}
