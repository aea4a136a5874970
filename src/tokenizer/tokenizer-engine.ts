import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { TokenizerError } from './errors.js';
import { additionalSpecialTokens } from './special-tokens.js';
import { checkTokenizerJson } from './tokenizer-json-check.js';
import type { TokenizerFiles } from './tokenizer-files.js';

/**
 * The part of @huggingface/tokenizers' Tokenizer that we call. The package's .d.ts files import their siblings
 * without file extensions, which NodeNext resolution cannot follow, so its own class is typed `any`; this interface
 * restores type checking at the boundary.
 */
export interface TokenizerEngine {
  encode(text: string, options: { add_special_tokens: boolean }): { ids: number[] };
  /** Throws on an empty list, and on ids that have no token; callers filter first. */
  decode(ids: number[], options: { skip_special_tokens: boolean; clean_up_tokenization_spaces: boolean }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
  get_vocab(withAddedTokens: boolean): Map<string, number>;
}

export function createTokenizerEngine(files: TokenizerFiles): TokenizerEngine {
  checkTokenizerJson(files.tokenizerJson, join(files.dir, 'tokenizer.json'));
  // The library skips on decode only tokens listed as strings; config files may list serialized AddedTokens.
  const config = { ...files.tokenizerConfig, additional_special_tokens: additionalSpecialTokens(files) };
  try {
    return new Tokenizer(files.tokenizerJson, config) as TokenizerEngine;
  } catch (err) {
    const path = join(files.dir, 'tokenizer.json');
    const reason = err instanceof Error ? err.message : String(err);
    throw new TokenizerError(
      path,
      `${path} was rejected by @huggingface/tokenizers (${reason}); save the tokenizer again with a recent transformers release, or report the unsupported component.`,
    );
  }
}
