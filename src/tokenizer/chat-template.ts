import { Template } from '@huggingface/jinja';
import { TokenizerError } from './errors.js';
import type { ChatTemplateSource } from './chat-template-selection.js';

/** A chat template compiled once, on first use, so a tokenizer whose template we cannot parse still encodes text. */
export class ChatTemplate {
  private compiled: Template | null = null;

  constructor(private readonly template: ChatTemplateSource) {}

  /**
   * Renders with `variables` as the template's globals. A template refuses input by calling `raise_exception(message)`
   * (e.g. roles that do not alternate); that and any runtime failure become one TokenizerError carrying the message.
   */
  render(variables: Record<string, unknown>): string {
    const template = this.compile();
    try {
      return template.render(variables);
    } catch (err) {
      const { origin } = this.template;
      throw new TokenizerError(origin, `The chat template in ${origin} failed on these messages (${errorMessage(err)}); change the messages or variables to suit the template, or fix it.`);
    }
  }

  private compile(): Template {
    if (this.compiled === null) {
      const { source, origin } = this.template;
      try {
        this.compiled = new Template(source);
      } catch (err) {
        throw new TokenizerError(origin, `The chat template in ${origin} does not parse as Jinja (${errorMessage(err)}); fix the template or pass another as the chatTemplate option.`);
      }
    }
    return this.compiled;
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
