import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';

export interface ParameterCounts {
  readonly trainable: number;
  readonly all: number;
}

/**
 * PEFT's get_nb_trainable_parameters: every distinct parameter once; packed 4-bit weights (uint8, two values per
 * byte) count as the number of weights they hold.
 */
export function countParameters(root: Module): ParameterCounts {
  const seen = new Set<Tensor>();
  let trainable = 0;
  let all = 0;
  for (const [, t] of root.namedParameters()) {
    if (seen.has(t)) continue;
    seen.add(t);
    const n = t.dtype === 'uint8' ? t.numel * 2 : t.numel;
    all += n;
    if (t.requiresGrad) trainable += n;
  }
  return { trainable, all };
}

/** "trainable params: 1,234 || all params: 5,678 || trainable%: 21.7330", as PEFT's print_trainable_parameters prints it. */
export function formatTrainableParameters({ trainable, all }: ParameterCounts): string {
  const percent = all === 0 ? 0 : (100 * trainable) / all;
  return `trainable params: ${withCommas(trainable)} || all params: ${withCommas(all)} || trainable%: ${percent.toFixed(4)}`;
}

function withCommas(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}
