import { join } from 'node:path';
import { TokenizerError } from './errors.js';
import type { TokenizerFiles } from './tokenizer-files.js';

/** Special-token strings as transformers resolves them; null where the tokenizer defines none. */
export interface SpecialTokenStrings {
  bos: string | null;
  eos: string | null;
  pad: string | null;
  unk: string | null;
}

export function readSpecialTokenStrings(files: TokenizerFiles): SpecialTokenStrings {
  const pick = (key: string) => specialToken(files, key);
  return { bos: pick('bos_token'), eos: pick('eos_token'), pad: pick('pad_token'), unk: pick('unk_token') };
}

/** transformers' SPECIAL_TOKENS_ATTRIBUTES: the named special tokens that `special_tokens_map` holds. */
const NAMED_SPECIAL_TOKENS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;

/**
 * The variables transformers' apply_chat_template gives every template from the tokenizer (its special_tokens_map):
 * each named special token the tokenizer defines, as text.
 */
export function templateSpecialTokens(files: TokenizerFiles): Record<string, string> {
  const variables: Record<string, string> = {};
  for (const key of NAMED_SPECIAL_TOKENS) {
    const token = specialToken(files, key);
    if (token !== null) variables[key] = token;
  }
  return variables;
}

function specialToken(files: TokenizerFiles, key: string): string | null {
  return tokenContent(files.specialTokensMap[key]) ?? tokenContent(files.tokenizerConfig[key]);
}

/**
 * Every named special token that special_tokens_map.json or tokenizer_config.json sets is text or an AddedToken
 * (null: none); anything else would silently read as no token.
 */
export function checkSpecialTokens(files: TokenizerFiles): void {
  for (const [name, config] of [['special_tokens_map.json', files.specialTokensMap], ['tokenizer_config.json', files.tokenizerConfig]] as const) {
    for (const key of NAMED_SPECIAL_TOKENS) {
      const value = config[key];
      if (value === undefined || value === null || tokenContent(value) !== null) continue;
      const path = join(files.dir, name);
      throw new TokenizerError(path, `${path}: ${key} must be a token's text or an object with a string "content", not ${JSON.stringify(value).slice(0, 60)}; fix or delete that field.`);
    }
  }
}

/** Config files write a special token either as its text or as a serialized AddedToken `{ content, ... }`. */
export function tokenContent(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && 'content' in value) {
    const content = (value as { content: unknown }).content;
    if (typeof content === 'string') return content;
  }
  return null;
}

/** generation_config.json's `eos_token_id`: one id, a list of ids (chat models that end turns several ways), or none. */
export function generationEosTokenIds(files: TokenizerFiles): number[] {
  const value = files.generationConfig['eos_token_id'];
  if (value === undefined || value === null) return [];
  const ids = Array.isArray(value) ? value : [value];
  if (!ids.every((id) => Number.isInteger(id) && (id as number) >= 0)) {
    const path = join(files.dir, 'generation_config.json');
    throw new TokenizerError(
      path,
      `${path} has eos_token_id ${JSON.stringify(value)}, which is neither a token id nor a list of token ids; fix or delete that field.`,
    );
  }
  return ids as number[];
}

/** `additional_special_tokens` as strings (special_tokens_map.json's list wins over tokenizer_config.json's). */
export function additionalSpecialTokens(files: TokenizerFiles): string[] {
  const list = files.specialTokensMap['additional_special_tokens'] ?? files.tokenizerConfig['additional_special_tokens'];
  if (!Array.isArray(list)) return [];
  return list.map(tokenContent).filter((token): token is string => token !== null);
}
