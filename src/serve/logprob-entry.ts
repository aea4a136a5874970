import type { PreTrainedTokenizer } from '../tokenizer/index.js';
import type { TokenLogprob } from './token-logprobs.js';

/** A token as the logprobs fields show it: its text in context and that text's UTF-8 bytes. */
export interface TokenString {
  readonly token: string;
  readonly bytes: readonly number[];
}

/** One output (or echoed prompt) token's log-probabilities, in the words both response formats need. */
export interface LogprobEntry extends TokenString {
  /** null for the first prompt token of an echo, which nothing predicts. */
  readonly logprob: number | null;
  /** The most likely tokens at its position (null with the logprob); completions add the chosen one. */
  readonly top: readonly (TokenString & { readonly logprob: number })[] | null;
  /** Character offset of its text in the choice's text (completions' text_offset). */
  readonly offset: number;
}

/** Previous tokens decoded with a candidate, so that tokenizers dropping a word's leading space keep it. */
const CONTEXT_TOKENS = 4;
/** SentencePiece's byte-fallback pieces: one raw byte each, which alone is no UTF-8 text. */
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;
const REPLACEMENT = '\uFFFD';

/** GPT-2's byte-level alphabet reversed: the character a byte-level BPE piece spells each byte with -> the byte. */
const BYTE_LEVEL = (() => {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
  const map = new Map<string, number>();
  let shifted = 0;
  for (let b = 0; b < 256; b++) map.set(String.fromCodePoint(printable(b) ? b : 256 + shifted++), b);
  return map;
})();

/** The raw bytes a piece stands for, when it is a byte-fallback piece or spelled in the byte-level alphabet. */
function pieceBytes(piece: string): number[] | null {
  const fallback = BYTE_PIECE.exec(piece);
  if (fallback) return [parseInt(fallback[1]!, 16)];
  const chars = [...piece];
  return chars.length > 0 && chars.every((c) => BYTE_LEVEL.has(c)) ? chars.map((c) => BYTE_LEVEL.get(c)!) : null;
}

/** Turns token ids and their log-probabilities into LogprobEntry values with the tokenizer's text of each token. */
export class LogprobEntries {
  constructor(private readonly tokenizer: PreTrainedTokenizer) {}

  /** `before`: the ids preceding this token (prompt and output); special tokens are shown, as vLLM shows them. */
  entry(before: readonly number[], logprob: TokenLogprob | null, token: number, offset: number): LogprobEntry {
    const context = before.slice(Math.max(0, before.length - CONTEXT_TOKENS));
    const prefix = this.decode(context);
    const text = (id: number) => this.tokenString(context, prefix, id);
    return {
      ...text(token),
      logprob: logprob?.logprob ?? null,
      top: logprob ? logprob.top.map((t) => ({ ...text(t.token), logprob: t.logprob })) : null,
      offset,
    };
  }

  /**
   * A token that is part of a character (its text decodes to U+FFFD) is shown as OpenAI shows one, "bytes:\\xe2\\x80",
   * with its raw bytes, so that two such tokens never share a text.
   */
  private tokenString(context: readonly number[], prefix: string, id: number): TokenString {
    const full = this.decode([...context, id]);
    const token = full.startsWith(prefix) ? full.slice(prefix.length) : this.decode([id]);
    const raw = token.includes(REPLACEMENT) ? pieceBytes(this.tokenizer.idToToken(id) ?? '') : null;
    if (!raw) return { token, bytes: [...Buffer.from(token, 'utf8')] };
    return { token: `bytes:${raw.map((b) => `\\x${b.toString(16).padStart(2, '0')}`).join('')}`, bytes: raw };
  }

  private decode(ids: readonly number[]): string {
    return this.tokenizer.decode(ids, { skipSpecialTokens: false });
  }
}
