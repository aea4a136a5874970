import type { GrammarMatcher } from '@mlc-ai/web-xgrammar';
import { maskAllows, withoutTokens, type TokenMask } from './token-mask.js';

/** A compiled grammar, ready to constrain any number of sequences. */
export interface Guide {
  /** One sequence's matcher; `stopTokenIds` are the only ids that may end it, and only where the grammar is complete. */
  start(stopTokenIds: ReadonlySet<number>): Promise<RowGrammar>;
  /** Lets the engine free the compiled grammar once no later start() will come; repeated calls do nothing. */
  release(): void;
}

/**
 * One sequence's place in its grammar. Its masks depend on the tokens it accepted alone, never on other rows,
 * so a constrained row changes nothing for the rows beside it.
 */
export class RowGrammar {
  private last: TokenMask | null = null;

  /**
   * `matcherStops`: the ids xgrammar treats as stop tokens (it needs at least one); those that are not in
   * `stopTokenIds` (a row with ignore_eos and no stop_token_ids) are cleared from every mask.
   */
  constructor(
    private readonly matcher: GrammarMatcher,
    private readonly matcherStops: readonly number[],
    private readonly stopTokenIds: ReadonlySet<number>,
  ) {}

  /** The tokens the grammar allows next: a stop token only where the text so far is a complete match. */
  async nextMask(): Promise<TokenMask> {
    const mask = await this.matcher.getNextTokenBitmask();
    this.last = mask;
    const foreign = this.matcherStops.filter((id) => !this.stopTokenIds.has(id));
    return foreign.length > 0 ? withoutTokens(mask, foreign) : mask;
  }

  /** Whether the text so far is a complete match (as of the last mask). */
  get complete(): boolean {
    const mask = this.last;
    return mask !== null && this.matcherStops.some((id) => maskAllows(mask, id));
  }

  /** Advances past `token`; throws when the grammar refuses it (the scheduler only picks tokens the mask allows). */
  accept(token: number): void {
    if (!this.matcher.acceptToken(token)) throw new Error(`the grammar refused token ${token}, which its mask allowed`);
  }

  dispose(): void {
    this.matcher.dispose();
  }
}
