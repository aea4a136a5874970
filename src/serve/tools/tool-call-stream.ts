import type { ParsedToolCall, ToolCallSyntax } from './tool-call-syntax.js';

/** What a piece of output turned out to be: content text to send, and calls completed in it. */
export interface ToolCallStep {
  readonly content: string;
  readonly calls: readonly ParsedToolCall[];
}

const isSpace = (c: string) => c === ' ' || c === '\n' || c === '\r' || c === '\t';

/**
 * Splits one choice's output, as it grows, into content and tool calls in `syntax`. Text that could still begin a
 * call is held back, and a call is passed on once its whole text has arrived, so streaming sends what the whole
 * output parses to: the steps of push()es and finish() add up to the same content and calls however the output is
 * cut. Whitespace between content and a call, and between calls, is dropped. A call whose text does not parse
 * is content. Calls beyond `maxCalls` (1 under parallel_tool_calls false) are read and dropped.
 */
export class ToolCallStream {
  private pending = '';
  /** Trailing whitespace of the content sent so far, sent with the next content or dropped before a call. */
  private heldSpace = '';
  private inCall = false;
  /** At the start of the output or right after a call: where openOnlyAtBoundary openers count. */
  private atBoundary = true;
  private afterCall = false;
  private callCount = 0;
  private content = '';
  private calls: ParsedToolCall[] = [];

  constructor(
    private readonly syntax: ToolCallSyntax,
    private readonly maxCalls: number,
  ) {}

  /** Whether any call has been read (the choice then finishes with "tool_calls"). */
  get called(): boolean {
    return this.callCount > 0;
  }

  push(text: string): ToolCallStep {
    this.pending += text;
    this.advance(false);
    return this.take();
  }

  /** At the end of the output: everything still held back. */
  finish(): ToolCallStep {
    this.advance(true);
    if (!this.afterCall) this.emit(this.heldSpace);
    this.heldSpace = '';
    return this.take();
  }

  private take(): ToolCallStep {
    const step = { content: this.content, calls: this.calls };
    this.content = '';
    this.calls = [];
    return step;
  }

  private advance(final: boolean): void {
    for (;;) {
      if (this.inCall) {
        const read = this.syntax.read(this.pending, final);
        if (read === null) return;
        const text = this.pending.slice(0, read.length);
        this.pending = this.pending.slice(read.length);
        this.inCall = false;
        if (read.calls) {
          for (const call of read.calls) if (this.callCount++ < this.maxCalls) this.calls.push(call);
          this.heldSpace = '';
          this.atBoundary = true;
          this.afterCall = true;
        } else {
          // The whitespace before it was held, not dropped, so the text reads as it was written.
          this.sendContent(text, true);
        }
        continue;
      }
      if (this.afterCall) this.skipSeparators();
      if (this.pending.length === 0) return;
      const at = this.openerAt(final);
      if (at === null) return;
      if (at >= 0) {
        this.sendContent(this.pending.slice(0, at), false);
        this.pending = this.pending.slice(at);
        this.inCall = true;
        continue;
      }
      const keep = final || this.syntax.openOnlyAtBoundary ? 0 : this.openerPrefixLength();
      this.sendContent(this.pending.slice(0, this.pending.length - keep), final);
      this.pending = this.pending.slice(this.pending.length - keep);
      return;
    }
  }

  /** Where a call opens in pending: its index, -1 for nowhere, null while that is not known yet. */
  private openerAt(final: boolean): number | null {
    const { openers } = this.syntax;
    if (!this.syntax.openOnlyAtBoundary) {
      const found = openers.map((o) => this.pending.indexOf(o)).filter((i) => i >= 0);
      return found.length > 0 ? Math.min(...found) : -1;
    }
    if (!this.atBoundary) return -1;
    const rest = this.pending.trimStart();
    if (openers.some((o) => rest.startsWith(o))) return this.pending.length - rest.length;
    if (!final && openers.some((o) => o.startsWith(rest))) return null;
    this.atBoundary = false;
    return -1;
  }

  /** The longest end of pending that is the start of an opener: it may become one. */
  private openerPrefixLength(): number {
    let longest = 0;
    for (const opener of this.syntax.openers) {
      for (let n = Math.min(opener.length - 1, this.pending.length); n > longest; n--) {
        if (this.pending.endsWith(opener.slice(0, n))) longest = n;
      }
    }
    return longest;
  }

  private skipSeparators(): void {
    let i = 0;
    while (i < this.pending.length && (isSpace(this.pending[i]!) || this.syntax.separators.includes(this.pending[i]!))) i++;
    this.pending = this.pending.slice(i);
  }

  /** Content text; its trailing whitespace held unless `whole` (nothing can follow it that would drop it). */
  private sendContent(text: string, whole: boolean): void {
    if (text.length === 0) return;
    let end = text.length;
    if (!whole) while (end > 0 && isSpace(text[end - 1]!)) end--;
    if (end === 0) {
      this.heldSpace += text;
      return;
    }
    this.emit(this.heldSpace + text.slice(0, end));
    this.heldSpace = text.slice(end);
  }

  private emit(text: string): void {
    if (text.length === 0) return;
    this.content += text;
    this.atBoundary = false;
    this.afterCall = false;
  }
}
