import { readFileSync } from 'node:fs';
import { RandomCheckpoint } from '../src/cli/random-checkpoint.js';
import { buildCausalLM } from '../src/models/build.js';
import type { CausalLM } from '../src/models/causal-lm.js';
import { parseModelConfig, type ModelConfig } from '../src/models/config.js';
import type { DType } from '../src/tensor/dtype.js';

/** The config of a benchmark shape: its config.json fields in bench/shapes.json (shared with bench/random_llama.py). */
export function benchConfig(shape: string): ModelConfig {
  const shapes = JSON.parse(readFileSync(new URL('../../bench/shapes.json', import.meta.url), 'utf8')) as Record<string, Record<string, unknown>>;
  const raw = shape.startsWith('_') ? undefined : shapes[shape];
  if (!raw) throw new Error(`Unknown benchmark shape "${shape}"; bench/shapes.json has ${Object.keys(shapes).filter((k) => !k.startsWith('_')).join(', ')}.`);
  return parseModelConfig(raw, `bench/shapes.json ${shape}`);
}

/**
 * A model of `config` with random weights (std 0.02): on the CPU from a generated checkpoint, on CUDA filled on the
 * device (random-llama.ts, imported only there).
 */
export async function randomBenchModel(config: ModelConfig, device: string, dtype: DType): Promise<CausalLM> {
  if (device === 'cpu') return buildCausalLM(config, new RandomCheckpoint(config, 1, 0.02), dtype, 'cpu');
  const { randomModel } = await import('./random-llama.js');
  return randomModel(config, { device, dtype, nf4: false });
}
