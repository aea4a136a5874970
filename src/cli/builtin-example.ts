import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCausalLM } from '../models/build.js';
import { loadConfig } from '../models/config.js';
import type { CausalLM } from '../models/causal-lm.js';
import { quantizeOnLoadLinearLoader } from '../quant/index.js';
import { RandomCheckpoint } from './random-checkpoint.js';

/** The package root: the folder above this file that holds package.json (src/cli/ or dist/src/cli/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('The loraforge package folder (with package.json) was not found above the CLI.');
    dir = parent;
  }
  return dir;
}

/** Files of the built-in example (see examples/builtin/README.md). */
export const BUILTIN = (() => {
  const dir = join(packageRoot(), 'examples', 'builtin');
  return {
    dir,
    model: join(dir, 'model'),
    train: join(dir, 'train.jsonl'),
    validation: join(dir, 'valid.jsonl'),
    preset: join(dir, 'train.yaml'),
  };
})();

/**
 * The built-in base model: the Llama of examples/builtin/model/config.json with weights drawn from
 * N(0, initializer_range^2) by its `loraforge_init_seed` (norms one). Nothing is read but the config.
 * With `qlora` its decoder projections are quantized to NF4 as they are created (float32 compute on the CPU).
 */
export async function loadBuiltinModel(device: string, options: { qlora?: boolean } = {}): Promise<CausalLM> {
  const config = await loadConfig(BUILTIN.model);
  const std = config.raw['initializer_range'] as number;
  const seed = config.raw['loraforge_init_seed'] as number;
  const source = new RandomCheckpoint(config, seed, std);
  if (!options.qlora) return buildCausalLM(config, source, 'float32', device);
  return buildCausalLM(config, source, 'float32', device, quantizeOnLoadLinearLoader({ computeDtype: device === 'cpu' ? 'float32' : 'bfloat16' }));
}
