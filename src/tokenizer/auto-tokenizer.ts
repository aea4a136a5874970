import { resolvePretrained } from '../io/hub.js';
import type { ResolvePretrainedOptions } from '../io/hub.js';
import { PreTrainedTokenizer } from './pretrained-tokenizer.js';
import { HUB_TOKENIZER_FILES, readTokenizerFiles } from './tokenizer-files.js';

/** Hub options (revision, token, cacheDir, endpoint); the tokenizer decides which files to fetch. */
export type TokenizerFromPretrainedOptions = Omit<ResolvePretrainedOptions, 'files'>;

/** transformers' entry point: one tokenizer class serves every tokenizer.json, so there is nothing to dispatch on. */
export const AutoTokenizer = {
  /** `idOrPath` is a local folder or a Hub repository id such as "Qwen/Qwen2.5-0.5B-Instruct". */
  async fromPretrained(idOrPath: string, options: TokenizerFromPretrainedOptions = {}): Promise<PreTrainedTokenizer> {
    const dir = await resolvePretrained(idOrPath, { ...options, files: [...HUB_TOKENIZER_FILES] });
    return new PreTrainedTokenizer(await readTokenizerFiles(dir));
  },
};

/** The type of what `AutoTokenizer.fromPretrained` returns, so `tokenizer: AutoTokenizer` reads as in transformers.js. */
export type AutoTokenizer = PreTrainedTokenizer;
