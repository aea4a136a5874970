import { randomBytes } from 'node:crypto';
import type { WrittenCalls } from '../grammar/guided-decoding.js';
import { isObject } from '../json-fields.js';
import { jsonValueEnd, parseJson } from './json-value-end.js';

/** One function call read from the model's output; `arguments` is JSON text, as OpenAI's tool_calls carry it. */
export interface ParsedToolCall {
  readonly name: string;
  readonly arguments: string;
}

/** A call's text at the front of the output: its length, and the calls it holds (null: not a call, so content). */
export interface CallRead {
  readonly length: number;
  readonly calls: readonly ParsedToolCall[] | null;
}

/** How one model family writes tool calls in its output. */
export interface ToolCallSyntax {
  /** The name the README and errors use. */
  readonly name: string;
  /** Texts that open a call; the call's text starts with one. */
  readonly openers: readonly string[];
  /** Openers count only at the start of the output or right after a call (Llama 3's bare JSON), never mid-text. */
  readonly openOnlyAtBoundary: boolean;
  /** Characters skipped between calls besides whitespace. */
  readonly separators: string;
  /** Reads the call at the front of `text` (which starts with an opener); null while more text could change it. */
  read(text: string, final: boolean): CallRead | null;
  /** A new call id in the form the family's template accepts back in the history. */
  newId(): string;
  /** The exact text its template writes calls in, which forced calls (tool_choice "required" or named) are kept to. */
  readonly written: WrittenCalls;
}

const ALPHANUMERIC = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

function randomId(length: number): string {
  return Array.from(randomBytes(length), (b) => ALPHANUMERIC[b % ALPHANUMERIC.length]).join('');
}

const openAiId = () => `call_${randomId(24)}`;

/** {"name", "arguments"} (or Llama's "parameters"): the arguments an object or JSON text; null when not a call. */
function callOf(value: unknown): ParsedToolCall | null {
  if (!isObject(value) || typeof value['name'] !== 'string' || value['name'].length === 0) return null;
  const args = value['arguments'] ?? value['parameters'] ?? {};
  if (typeof args === 'string') return isObject(parseJson(args)) ? { name: value['name'], arguments: args } : null;
  return isObject(args) ? { name: value['name'], arguments: JSON.stringify(args) } : null;
}

/** One call object, or an array of them; null when any is not a call. */
function callsOf(json: string): ParsedToolCall[] | null {
  const value = parseJson(json.trim());
  const list = Array.isArray(value) ? value : [value];
  const calls = list.map(callOf);
  return list.length > 0 && calls.every((c) => c !== null) ? (calls as ParsedToolCall[]) : null;
}

/** The JSON value after `from` (whitespace skipped): its end, or -1 while open, or null when none starts there. */
function jsonAfter(text: string, from: number): { start: number; end: number } | null {
  const start = text.length - text.slice(from).trimStart().length;
  if (start >= text.length) return { start, end: -1 };
  if (text[start] !== '{' && text[start] !== '[') return null;
  return { start, end: jsonValueEnd(text, start) };
}

/**
 * A call between an opening and a closing tag, holding a call object or an array of them: Hermes
 * (`<tool_call>{...}</tool_call>`, Qwen2.5 and Qwen3) and Phi-4-mini (`<|tool_call|>...<|/tool_call|>`). A call the
 * output ends inside, its closing tag never written, is read to the end.
 */
function tagged(name: string, open: string, close: string, written: WrittenCalls): ToolCallSyntax {
  return {
    name,
    openers: [open],
    openOnlyAtBoundary: false,
    separators: '',
    read(text, final) {
      const end = text.indexOf(close, open.length);
      if (end < 0 && !final) return null;
      const body = text.slice(open.length, end < 0 ? text.length : end);
      return { length: end < 0 ? text.length : end + close.length, calls: callsOf(body) };
    },
    newId: openAiId,
    written,
  };
}

/**
 * Llama 3.1+ JSON tool calls: the output is `{"name": ..., "parameters": {...}}` (or starts with <|python_tag|>
 * before it), several separated by ";". Output that starts otherwise is content.
 */
const LLAMA3_JSON: ToolCallSyntax = {
  name: 'llama3_json',
  openers: ['<|python_tag|>', '{'],
  openOnlyAtBoundary: true,
  separators: ';',
  read(text, final) {
    const json = jsonAfter(text, text.startsWith('<|python_tag|>') ? '<|python_tag|>'.length : 0);
    if (json === null) return { length: text.length, calls: null };
    if (json.end < 0) return final ? { length: text.length, calls: null } : null;
    const call = callOf(parseJson(text.slice(json.start, json.end)));
    return { length: json.end, calls: call ? [call] : null };
  },
  newId: openAiId,
  // Llama 3.1's template writes a past call as {"name": ..., "parameters": ...}, and the model answers in kind.
  written: { form: 'object', begin: '', callBegin: '', callEnd: '', separator: '; ', end: '', argumentsKey: 'parameters' },
};

/**
 * Mistral: `[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]`, or with the v11 tokenizer
 * `[TOOL_CALLS]name[ARGS]{...}` once per call. Its templates take back only 9-character alphanumeric ids.
 */
const MISTRAL: ToolCallSyntax = {
  name: 'mistral',
  openers: ['[TOOL_CALLS]'],
  openOnlyAtBoundary: false,
  separators: '',
  read(text, final) {
    const from = '[TOOL_CALLS]'.length;
    const list = jsonAfter(text, from);
    if (list !== null) {
      if (list.end < 0) return final ? { length: text.length, calls: null } : null;
      return { length: list.end, calls: callsOf(text.slice(list.start, list.end)) };
    }
    const args = text.indexOf('[ARGS]', from);
    const json = args < 0 ? null : jsonAfter(text, args + '[ARGS]'.length);
    if (json === null || json.end < 0) return final ? { length: text.length, calls: null } : null;
    const call = callOf({ name: text.slice(from, args).trim(), arguments: text.slice(json.start, json.end) });
    return { length: json.end, calls: call ? [call] : null };
  },
  newId: () => randomId(9),
  written: { form: 'object', begin: '[TOOL_CALLS][', callBegin: '', callEnd: '', separator: ', ', end: ']', argumentsKey: 'arguments' },
};

/** Mistral with the v11 tokenizer's templates (they write `[ARGS]`): calls read the same, forced ones written `[TOOL_CALLS]name[ARGS]{...}`. */
const MISTRAL_V11: ToolCallSyntax = { ...MISTRAL, written: { form: 'named', callBegin: '[TOOL_CALLS]', nameEnd: '[ARGS]' } };

export const TOOL_CALL_SYNTAXES: readonly ToolCallSyntax[] = [
  // Qwen2.5's and Qwen3's templates: each call on its own lines between the tags, calls one line apart.
  tagged('hermes', '<tool_call>', '</tool_call>', { form: 'object', begin: '', callBegin: '<tool_call>\n', callEnd: '\n</tool_call>', separator: '\n', end: '', argumentsKey: 'arguments' }),
  // llama.cpp's Phi-4-mini template: each call's {"name", "arguments"} between the tags, nothing between calls.
  tagged('phi4_mini', '<|tool_call|>', '<|/tool_call|>', { form: 'object', begin: '', callBegin: '<|tool_call|>', callEnd: '<|/tool_call|>', separator: '', end: '', argumentsKey: 'arguments' }),
  LLAMA3_JSON,
  MISTRAL,
];

/**
 * The syntax the model of this chat template writes tool calls in, found by its first opener in the template's
 * source (the text its tool instructions or its rendering of past calls write), or null for none we parse.
 */
export function toolCallSyntaxOf(templateSource: string): ToolCallSyntax | null {
  const syntax = TOOL_CALL_SYNTAXES.find((s) => templateSource.includes(s.openers[0]!)) ?? null;
  return syntax === MISTRAL && templateSource.includes('[ARGS]') ? MISTRAL_V11 : syntax;
}
