export { AutoTokenizer } from './auto-tokenizer.js';
export type { TokenizerFromPretrainedOptions } from './auto-tokenizer.js';
export { PreTrainedTokenizer } from './pretrained-tokenizer.js';
export type { ChatMessage, ChatTemplateOptions, DecodeOptions, EncodeOptions, TokenizerSpelling } from './pretrained-tokenizer.js';
export { TokenizerError } from './errors.js';
export { readTokenizerFiles } from './tokenizer-files.js';
export type { TokenizerFiles } from './tokenizer-files.js';
