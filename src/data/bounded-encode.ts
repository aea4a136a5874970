import type { DataTokenizer } from './tokenize.js';

/** First guess at the characters `limit` tokens take; doubled until it suffices. */
const CHARS_PER_TOKEN = 8;
const MIN_CHARS = 1024;
/** A prefix's encoding counts only when it runs this many tokens past the limit, so its cut-off end is beyond it. */
const MARGIN = 8;

/**
 * The first `limit` tokens of `tok.encode(text)` without encoding all of a long text, whose encoding costs memory
 * (about 150 bytes per character in @huggingface/tokenizers): prefixes of doubling length are encoded until two
 * successive ones reach past the limit and agree on its first `limit` tokens, i.e. where the cut falls no longer
 * changes them. A text shorter than the prefix is encoded whole.
 */
export function encodeAtMost(tok: DataTokenizer, text: string, addSpecialTokens: boolean, limit: number): number[] {
  if (limit <= 0) return [];
  let previous: number[] | null = null;
  for (let chars = Math.max(MIN_CHARS, limit * CHARS_PER_TOKEN); chars < text.length; chars *= 2) {
    const ids = tok.encode(text.slice(0, cutBefore(text, chars)), { addSpecialTokens });
    if (ids.length < limit + MARGIN) continue;
    if (previous !== null && agreeOn(previous, ids, limit)) return ids.slice(0, limit);
    previous = ids;
  }
  const ids = tok.encode(text, { addSpecialTokens });
  return ids.length > limit ? ids.slice(0, limit) : ids;
}

/** `at`, or one less where `at` would split a surrogate pair. */
function cutBefore(text: string, at: number): number {
  const code = text.charCodeAt(at - 1);
  return code >= 0xd800 && code <= 0xdbff ? at - 1 : at;
}

function agreeOn(a: readonly number[], b: readonly number[], n: number): boolean {
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}
