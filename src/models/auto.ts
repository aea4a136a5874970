import { openCheckpoint } from '../io/checkpoint.js';
import { resolvePretrained } from '../io/hub.js';
import { loadConfig } from './config.js';
import { buildCausalLM, configDType, linearLoaderFor, type FromPretrainedOptions } from './build.js';
import type { CausalLM } from './causal-lm.js';

/** transformers' entry point: a local folder or a Hub id ("org/name"). */
export const AutoModelForCausalLM = {
  async fromPretrained(idOrDir: string, options: FromPretrainedOptions = {}): Promise<CausalLM> {
    const dir = await resolvePretrained(idOrDir, { revision: options.revision, token: options.token, cacheDir: options.cacheDir });
    const config = await loadConfig(dir, { attnImplementation: options.attnImplementation });
    if (config.skippedTower) console.warn(`loraforge: ${idOrDir} is a ${config.architecture}; loading its language model only (the ${config.skippedTower} is not loaded).`);
    const dtype = !options.dtype || options.dtype === 'auto' ? configDType(config) : options.dtype;
    const device = options.device ?? 'cpu';
    const loader = linearLoaderFor(config, dir);
    const source = await openCheckpoint(dir);
    try {
      return await buildCausalLM(config, source, dtype, device, loader);
    } finally {
      await source.close();
    }
  },
};
