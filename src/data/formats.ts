import type { ChatMessage } from '../tokenizer/index.js';
import { alpacaPrompt } from './alpaca.js';
import { DataError } from './errors.js';
import { sharegptMessages } from './sharegpt.js';

/** The record shapes loraforge reads, by the names users declare them with (--data-format). */
export const DATA_FORMATS = ['text', 'prompt_completion', 'messages', 'sharegpt', 'alpaca'] as const;
export type DataFormat = (typeof DATA_FORMATS)[number];

/** One example reduced to what tokenization needs; alpaca becomes a completion with its prompt template. */
export type NormalizedExample =
  | { kind: 'text'; text: string }
  | { kind: 'completion'; prompt: string; completion: string }
  | { kind: 'chat'; messages: ChatMessage[] };

/**
 * The roles a chat example may use: the ones chat templates of the supported families read (ipython is Llama 3's
 * tool output, developer OpenAI's system turn). Any other role is a typo a template would render as it pleases.
 */
export const CHAT_ROLES = ['system', 'developer', 'user', 'assistant', 'tool', 'ipython'] as const;

const SHAPES = '{"text"}, {"prompt","completion"}, {"messages":[{"role","content"}]}, ShareGPT {"conversations":[{"from","value"}]} or alpaca {"instruction","input","output"}';

/** The format a record's keys announce; `where` is "path:line". */
export function detectFormat(value: Record<string, unknown>, where: string): DataFormat {
  if ('messages' in value) return 'messages';
  if ('conversations' in value) return 'sharegpt';
  if ('instruction' in value && 'output' in value) return 'alpaca';
  if ('prompt' in value && 'completion' in value) return 'prompt_completion';
  if ('text' in value) return 'text';
  const keys = Object.keys(value).map((k) => JSON.stringify(k)).join(', ') || 'none';
  throw new DataError(`${where}: cannot tell the data format from the keys ${keys}; use one of ${SHAPES}, map your columns onto them with --data-columns, or declare it with --data-format.`);
}

function stringField(value: Record<string, unknown>, key: string, where: string, format: DataFormat, optional = false): string {
  const v = value[key];
  if (typeof v === 'string') return v;
  if (optional && (v === undefined || v === null)) return '';
  const got = v === undefined ? 'it is missing' : `got ${JSON.stringify(v)?.slice(0, 60)}`;
  throw new DataError(`${where}: field "${key}" must be a string in the ${format} format (${got}).`);
}

export function normalizeRecord(value: Record<string, unknown>, format: DataFormat, where: string): NormalizedExample {
  switch (format) {
    case 'text':
      return { kind: 'text', text: stringField(value, 'text', where, format) };
    case 'prompt_completion':
      return { kind: 'completion', prompt: stringField(value, 'prompt', where, format), completion: stringField(value, 'completion', where, format) };
    case 'alpaca':
      return {
        kind: 'completion',
        prompt: alpacaPrompt(stringField(value, 'instruction', where, format), stringField(value, 'input', where, format, true)),
        completion: stringField(value, 'output', where, format),
      };
    case 'messages':
      return { kind: 'chat', messages: parseMessages(value['messages'], where) };
    case 'sharegpt':
      return { kind: 'chat', messages: sharegptMessages(value['conversations'], where) };
  }
}

function parseMessages(v: unknown, where: string): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) throw new DataError(`${where}: "messages" must be a non-empty list of {"role", "content"} objects.`);
  return v.map((m, i) => {
    const msg = m as Record<string, unknown> | null;
    if (typeof msg !== 'object' || msg === null || typeof msg['role'] !== 'string' || typeof msg['content'] !== 'string') {
      throw new DataError(`${where}: messages[${i}] must be an object with string "role" and "content".`);
    }
    if (!(CHAT_ROLES as readonly string[]).includes(msg['role'])) {
      throw new DataError(`${where}: messages[${i}] has the role ${JSON.stringify(msg['role'])}; the roles are ${CHAT_ROLES.join(', ')}.`);
    }
    return { ...msg, role: msg['role'], content: msg['content'] } as ChatMessage;
  });
}
