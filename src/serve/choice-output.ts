import type { LogprobEntries, LogprobEntry } from './logprob-entry.js';
import { OutputText, type Detokenize } from './output-text.js';
import type { TokenLogprob } from './token-logprobs.js';

/** Text (and log-probabilities, when asked for) that one choice may send now. */
export interface ChoiceDelta {
  readonly index: number;
  readonly text: string;
  /** null when the request asked for none. */
  readonly logprobs: readonly LogprobEntry[] | null;
}

/** The prompt as a choice starts with it under echo: its text, and its tokens' log-probabilities when asked for. */
export interface Echo {
  readonly text: string;
  readonly entries: readonly LogprobEntry[];
}

/**
 * One choice's output as it grows: its text (OutputText's stop-string rules), and the log-probability entry of
 * every token passed on. An entry is sent with the first text delta at or after its token, so a streamed choice's
 * entries arrive no earlier than their text, and the streamed entries add up to the whole response's.
 */
export class ChoiceOutput {
  private readonly output: OutputText;
  private readonly context: number[];
  readonly entries: LogprobEntry[];
  private sent = 0;
  /** Text before the output in this choice (the echoed prompt), which text offsets count. */
  private readonly prefix: string;

  /** `logprobEntries` is null when the request asked for no log-probabilities. */
  constructor(
    readonly index: number,
    promptIds: readonly number[],
    detokenize: Detokenize,
    stops: readonly string[],
    keepStop: boolean,
    private readonly logprobEntries: LogprobEntries | null,
    echo: Echo | null,
  ) {
    this.output = new OutputText(detokenize, stops, keepStop);
    this.context = [...promptIds];
    this.prefix = echo?.text ?? '';
    this.entries = [...(echo?.entries ?? [])];
  }

  /** The echoed prompt, sent before any output; null without echo. */
  opening(): ChoiceDelta | null {
    return this.prefix ? this.delta(this.prefix) : null;
  }

  get stopped(): boolean {
    return this.output.stopped;
  }

  /** The choice's whole text so far (the prefix included). */
  get text(): string {
    return this.prefix + this.output.text;
  }

  /** Adds one generated token; returns what may be sent now, or null when nothing may. */
  push(token: number, logprob: TokenLogprob | null): ChoiceDelta | null {
    if (this.logprobEntries) this.entries.push(this.logprobEntries.entry(this.context, logprob, token, this.prefix.length + this.output.decodedLength));
    this.context.push(token);
    const text = this.output.push(token);
    this.clampOffsets();
    return this.delta(text);
  }

  /** At the end of generation: what push() held back, and entries not sent yet. */
  finish(): ChoiceDelta | null {
    const tail = this.output.finish();
    this.clampOffsets();
    return this.delta(tail) ?? (this.sent < this.entries.length ? this.delta('', true) : null);
  }

  /** A stop string cut off can leave the last tokens' offsets past the text's end; they move to its end. */
  private clampOffsets(): void {
    if (!this.output.stopped) return;
    const end = this.prefix.length + this.output.decodedLength;
    for (let i = this.sent; i < this.entries.length; i++) if (this.entries[i]!.offset > end) this.entries[i] = { ...this.entries[i]!, offset: end };
  }

  private delta(text: string, force = false): ChoiceDelta | null {
    if (!text && !force) return null;
    const logprobs = this.logprobEntries ? this.entries.slice(this.sent) : null;
    this.sent = this.entries.length;
    return { index: this.index, text, logprobs };
  }
}
