import type { ChatMessage } from '../tokenizer/index.js';
import { DataError } from './errors.js';

/** A piece of rendered text and whether the loss is taken on it. */
export interface TextSegment {
  text: string;
  train: boolean;
}

export type RenderChat = (messages: readonly ChatMessage[], addGenerationPrompt: boolean) => string;

/** Stands in for one assistant turn's content, to find where the template writes that content. */
const CONTENT_MARKER = 'LORAFORGE0ASSISTANT0CONTENT';

/**
 * Splits the rendered conversation into prompt and assistant pieces. An assistant turn's trained text is what the
 * full rendering holds from the end of its generation prompt to the end of the turn: its content as the template
 * writes it and the template's end-of-turn text (`<|im_end|>\n`, `<end_of_turn>\n`, eos, ...), not its role header.
 *
 * Both ends are found by rendering parts of the conversation:
 * - start: the prompt `render(messages[:i], true)`, as far as the full rendering agrees with it (Qwen3's
 *   enable_thinking=false prompt ends in an empty <think> block that earlier turns of the full rendering lack);
 * - end: where `render(messages[:i+1])` ends, when that is a prefix of the full rendering (ChatML, Llama 3, Gemma).
 *   Otherwise (Qwen3 drops <think> blocks from turns before the last user message; Phi writes eos after whatever
 *   turn is last) the turn's content is located by rendering the conversation with that content replaced by a
 *   marker, and the end-of-turn text is what the template writes after the content when the turn is last, as far
 *   as the full rendering agrees with it.
 * "As far as it agrees" never stops inside a tag such as `<|endoftext|>`. A template defeating both rules (one that
 * reorders turns, or writes content twice) cannot be masked; the error names `template` (the template's origin)
 * and --train-on-inputs.
 */
export function chatSegments(messages: readonly ChatMessage[], render: RenderChat, where: string, template?: string): TextSegment[] {
  const full = render(messages, false);
  const segments: TextSegment[] = [];
  let pos = 0;
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const span = assistantSpan(messages, i, full, render);
    if (span === null || span.start < pos || span.end < span.start) {
      throw new DataError(
        `${where}: the chat template${template === undefined ? '' : ` in ${template}`} does not render the assistant turn messages[${i}] at a place of the whole conversation that can be found, so assistant turns cannot be masked; pass --train-on-inputs to train on every token.`,
      );
    }
    if (span.start > pos) segments.push({ text: full.slice(pos, span.start), train: false });
    if (span.end > span.start) segments.push({ text: full.slice(span.start, span.end), train: true });
    pos = span.end;
  });
  if (pos < full.length) segments.push({ text: full.slice(pos), train: false });
  return segments;
}

function assistantSpan(messages: readonly ChatMessage[], i: number, full: string, render: RenderChat): { start: number; end: number } | null {
  const start = agreement(render(messages.slice(0, i), true), full, 0);
  const turn = render(messages.slice(0, i + 1), false);
  if (full.startsWith(turn)) return { start, end: turn.length };
  const contentEnd = contentEndByMarker(messages, i, full, render);
  if (contentEnd === null) return null;
  const asLast = render([...messages.slice(0, i), { ...messages[i]!, content: CONTENT_MARKER }], false);
  const endOfTurn = asLast.slice(asLast.indexOf(CONTENT_MARKER) + CONTENT_MARKER.length);
  return { start, end: contentEnd + agreement(endOfTurn, full, contentEnd) };
}

/**
 * Where turn i's content ends in `full`: the conversation rendered with that content replaced by the marker
 * continues after the marker with exactly what `full` ends with. Null when the marker is not there once, or the
 * rest of the rendering depends on the content.
 */
function contentEndByMarker(messages: readonly ChatMessage[], i: number, full: string, render: RenderChat): number | null {
  let marked: string;
  try {
    marked = render(messages.map((m, j) => (j === i ? { ...m, content: CONTENT_MARKER } : m)), false);
  } catch {
    return null;
  }
  const at = marked.indexOf(CONTENT_MARKER);
  if (at < 0 || marked.indexOf(CONTENT_MARKER, at + 1) >= 0) return null;
  const rest = marked.slice(at + CONTENT_MARKER.length);
  return full.endsWith(rest) ? full.length - rest.length : null;
}

/**
 * How many characters of `text` `full` holds from `at` on, stopping before a tag that `full` does not hold whole
 * (`<|end|><|endoftext|>` against `<|end|><|user|>` agrees on `<|end|>`, not on `<|end|><|`).
 */
function agreement(text: string, full: string, at: number): number {
  let n = 0;
  while (n < text.length && at + n < full.length && text[n] === full[at + n]) n++;
  if (n === 0 || n === text.length) return n;
  const open = text.lastIndexOf('<', n - 1);
  const straddles = open >= 0 && text.lastIndexOf('>', n - 1) < open && text.indexOf('>', n) >= 0;
  return straddles ? open : n;
}
