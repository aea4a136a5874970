/** Turns token ids into text. */
export type Detokenize = (ids: readonly number[]) => string;

const REPLACEMENT = '\uFFFD';

/**
 * The text of one completion, built token by token: incremental detokenization (vLLM's prefix/read offsets, so that
 * tokenizers which strip a leading space or split a character across tokens decode as the whole sequence does) and
 * stop strings, which are cut off and never sent (unless `keepStop`: vLLM's include_stop_str_in_output, where the
 * text ends with the stop string instead). Streaming and non-streaming responses both use it, so they carry
 * the same text.
 */
export class OutputText {
  private readonly ids: number[] = [];
  /** ids[prefixOffset:readOffset] decodes to text already appended; it gives the next token its left context. */
  private prefixOffset = 0;
  private readOffset = 0;
  /** Decoded so far; the part after `released` is held back while it could be the start of a stop string. */
  private decoded = '';
  private released = 0;
  private readonly holdBack: number;
  stopped = false;

  constructor(
    private readonly detokenize: Detokenize,
    private readonly stops: readonly string[],
    private readonly keepStop = false,
  ) {
    this.holdBack = Math.max(0, ...stops.map((s) => s.length - 1));
  }

  /** Everything released so far. */
  get text(): string {
    return this.decoded.slice(0, this.released);
  }

  /** Characters decoded so far, held-back ones included: where the next token's text starts (text_offset). */
  get decodedLength(): number {
    return this.decoded.length;
  }

  /** Adds one generated token; returns the text that may be sent now (possibly empty). */
  push(token: number): string {
    if (this.stopped) return '';
    this.ids.push(token);
    const prefix = this.detokenize(this.ids.slice(this.prefixOffset, this.readOffset));
    const full = this.detokenize(this.ids.slice(this.prefixOffset));
    // A trailing U+FFFD is a character still missing bytes that the next token may bring.
    if (full.length > prefix.length && !full.endsWith(REPLACEMENT)) this.append(full.slice(prefix.length));
    return this.release(false);
  }

  /** At the end of generation: appends what push() held back and returns what remains to be sent. */
  finish(): string {
    if (!this.stopped && this.readOffset < this.ids.length) {
      const prefix = this.detokenize(this.ids.slice(this.prefixOffset, this.readOffset));
      const full = this.detokenize(this.ids.slice(this.prefixOffset));
      if (full.length > prefix.length) this.append(full.slice(prefix.length));
    }
    return this.release(true);
  }

  private append(delta: string): void {
    const searchFrom = Math.max(0, this.decoded.length - this.holdBack);
    this.decoded += delta;
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    let cut = -1;
    let end = -1;
    for (const stop of this.stops) {
      const at = this.decoded.indexOf(stop, searchFrom);
      if (at >= 0 && (cut < 0 || at < cut)) {
        cut = at;
        end = at + stop.length;
      }
    }
    if (cut >= 0) {
      this.decoded = this.decoded.slice(0, this.keepStop ? end : cut);
      this.stopped = true;
    }
  }

  private release(all: boolean): string {
    let end = all || this.stopped ? this.decoded.length : Math.max(this.released, this.decoded.length - this.holdBack);
    // Never split a surrogate pair between two chunks.
    if (end < this.decoded.length && end > this.released && isHighSurrogate(this.decoded.charCodeAt(end - 1))) end--;
    const out = this.decoded.slice(this.released, end);
    this.released = end;
    return out;
  }
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}
