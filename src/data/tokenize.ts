import type { ChatMessage, ChatTemplateOptions, EncodeOptions } from '../tokenizer/index.js';
import { encodeAtMost } from './bounded-encode.js';
import { chatSegments, type TextSegment } from './chat-segments.js';
import type { NormalizedExample } from './formats.js';

/** What the data pipeline needs from a tokenizer (PreTrainedTokenizer satisfies it). */
export interface DataTokenizer {
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  encode(text: string, options?: EncodeOptions): number[];
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions & { tokenize: false }): string;
  /** Where the chat template these options select comes from, for errors (optional: tests' fakes lack it). */
  chatTemplateOrigin?(options?: ChatTemplateOptions): string;
}

export interface TokenizeOptions {
  /** Take the loss on every token, prompts included. */
  trainOnInputs?: boolean;
  /** The example's location (file:line) for errors. */
  where?: string;
  /** How chat examples are rendered: template kwargs such as enableThinking, tools, another template. */
  chatTemplate?: Omit<ChatTemplateOptions, 'addGenerationPrompt'>;
  /** Stop after this many tokens (the first ones of the whole example); text past them is not encoded. */
  maxTokens?: number;
}

/** Token ids and per-position labels (the token itself where the loss is taken, -100 elsewhere; unshifted). */
export interface TokenizedExample {
  inputIds: number[];
  labels: number[];
  /** A packed row (packExamples): the lengths of the examples it holds, in order, adding up to inputIds.length. */
  segmentLengths?: number[];
}

export const IGNORE_INDEX = -100;

/**
 * Tokenizes one example. text: bos (if the tokenizer adds one) + text + eos, all trained. completion: the prompt
 * with special tokens, then the completion and eos, which alone are trained. chat: the template's rendering, with
 * assistant turns trained. `trainOnInputs` trains on every token. Segments are encoded separately, so the prompt
 * tokenizes exactly as it will at generation time.
 */
export function tokenizeExample(ex: NormalizedExample, tok: DataTokenizer, options: TokenizeOptions = {}): TokenizedExample {
  const inputIds: number[] = [];
  const labels: number[] = [];
  const maxTokens = options.maxTokens ?? Infinity;
  const push = (ids: readonly number[], train: boolean) => {
    for (const id of ids) {
      if (inputIds.length >= maxTokens) return;
      inputIds.push(id);
      labels.push(train || options.trainOnInputs ? id : IGNORE_INDEX);
    }
  };
  const encode = (text: string, addSpecialTokens: boolean) =>
    maxTokens === Infinity ? tok.encode(text, { addSpecialTokens }) : encodeAtMost(tok, text, addSpecialTokens, maxTokens - inputIds.length);
  const eos = tok.eosTokenId === null ? [] : [tok.eosTokenId];
  switch (ex.kind) {
    case 'text':
      push([...encode(ex.text, true), ...eos], true);
      break;
    case 'completion':
      push(encode(ex.prompt, true), false);
      push([...encode(ex.completion, false), ...eos], true);
      break;
    case 'chat': {
      const chat = options.chatTemplate ?? {};
      const render = (messages: readonly ChatMessage[], addGenerationPrompt: boolean) => tok.applyChatTemplate(messages, { ...chat, tokenize: false, addGenerationPrompt });
      const segments: TextSegment[] = options.trainOnInputs
        ? [{ text: render(ex.messages, false), train: true }]
        : chatSegments(ex.messages, render, options.where ?? 'chat example', tok.chatTemplateOrigin?.(chat));
      for (const s of segments) push(encode(s.text, false), s.train);
      break;
    }
  }
  return { inputIds, labels };
}

/** The prompt a model is asked to continue when this example is used for evaluation, and the reference answer. */
export function promptAndReference(
  ex: NormalizedExample,
  tok: DataTokenizer,
  chatTemplate: TokenizeOptions['chatTemplate'] = {},
): { promptIds: number[]; reference: string } | null {
  switch (ex.kind) {
    case 'text':
      return null;
    case 'completion':
      return { promptIds: tok.encode(ex.prompt, { addSpecialTokens: true }), reference: ex.completion };
    case 'chat': {
      const last = ex.messages.length - 1;
      if (ex.messages[last]!.role !== 'assistant' || last === 0) return null;
      const text = tok.applyChatTemplate(ex.messages.slice(0, last), { ...chatTemplate, tokenize: false, addGenerationPrompt: true });
      return { promptIds: tok.encode(text, { addSpecialTokens: false }), reference: ex.messages[last]!.content };
    }
  }
}
