import { resolvePretrained } from '../io/hub.js';
import { loadConfig } from './config.js';
import { buildCausalLM, configDType, projectionFormatFor, type FromPretrainedOptions } from './build.js';
import { openCheckedCheckpoint } from './checkpoint-check.js';
import type { CausalLM } from './causal-lm.js';

/** transformers' entry point: a local folder or a Hub id ("org/name"). */
export const AutoModelForCausalLM = {
  async fromPretrained(idOrDir: string, options: FromPretrainedOptions = {}): Promise<CausalLM> {
    const dir = await resolvePretrained(idOrDir, { revision: options.revision, token: options.token, cacheDir: options.cacheDir });
    const config = await loadConfig(dir, { attnImplementation: options.attnImplementation });
    if (config.skippedTower) console.warn(`loraforge: ${idOrDir} is a ${config.architecture}; loading its language model only (the ${config.skippedTower} is not loaded).`);
    const dtype = !options.dtype || options.dtype === 'auto' ? configDType(config) : options.dtype;
    const device = options.device ?? 'cpu';
    const { load } = projectionFormatFor(config, dir);
    const source = await openCheckedCheckpoint(dir, config);
    try {
      return await buildCausalLM(config, source, dtype, device, load);
    } finally {
      await source.close();
    }
  },
};
