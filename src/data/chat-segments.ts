import type { ChatMessage } from '../tokenizer/index.js';
import { DataError } from './errors.js';

/** A piece of rendered text and whether the loss is taken on it. */
export interface TextSegment {
  text: string;
  train: boolean;
}

export type RenderChat = (messages: readonly ChatMessage[], addGenerationPrompt: boolean) => string;

/**
 * Splits a rendered conversation into prompt and assistant pieces by rendering its prefixes: the text an assistant
 * turn adds after the generation prompt (its content plus the template's end-of-turn marker) is trained on.
 * Requires a template whose renderings of prefixes are prefixes of the full rendering, which holds for the
 * common ChatML / Llama 3 / Mistral templates.
 */
export function chatSegments(messages: readonly ChatMessage[], render: RenderChat, where: string): TextSegment[] {
  const full = render(messages, false);
  const segments: TextSegment[] = [];
  let pos = 0;
  const prefixEnd = (text: string): number => {
    if (!full.startsWith(text) || text.length < pos) {
      throw new DataError(
        `${where}: the chat template does not render this conversation's prefixes as prefixes of the whole, so assistant turns cannot be masked; pass --train-on-inputs to train on every token.`,
      );
    }
    return text.length;
  };
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const promptEnd = prefixEnd(render(messages.slice(0, i), true));
    const turnEnd = prefixEnd(render(messages.slice(0, i + 1), false));
    if (promptEnd > pos) segments.push({ text: full.slice(pos, promptEnd), train: false });
    if (turnEnd > promptEnd) segments.push({ text: full.slice(promptEnd, turnEnd), train: true });
    pos = turnEnd;
  });
  if (pos < full.length) segments.push({ text: full.slice(pos), train: false });
  return segments;
}
