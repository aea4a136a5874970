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

  private tokenString(context: readonly number[], prefix: string, id: number): TokenString {
    const full = this.decode([...context, id]);
    const token = full.startsWith(prefix) ? full.slice(prefix.length) : this.decode([id]);
    const piece = BYTE_PIECE.exec(this.tokenizer.idToToken(id) ?? '');
    return { token, bytes: piece ? [parseInt(piece[1]!, 16)] : [...Buffer.from(token, 'utf8')] };
  }

  private decode(ids: readonly number[]): string {
    return this.tokenizer.decode(ids, { skipSpecialTokens: false });
  }
}
