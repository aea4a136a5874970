import type { ChatMessage } from '../tokenizer/index.js';
import { DataError } from './errors.js';

/** ShareGPT's speaker names and the chat role each one is. */
const SHAREGPT_ROLES: Readonly<Record<string, string>> = { system: 'system', human: 'user', user: 'user', gpt: 'assistant', assistant: 'assistant' };

/** A ShareGPT `conversations` list, [{"from": "human" | "gpt" | "system", "value"}], as chat messages. */
export function sharegptMessages(v: unknown, where: string): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) throw new DataError(`${where}: "conversations" must be a non-empty list of {"from", "value"} objects.`);
  return v.map((turn, i) => {
    const t = turn as Record<string, unknown> | null;
    if (typeof t !== 'object' || t === null || typeof t['from'] !== 'string' || typeof t['value'] !== 'string') {
      throw new DataError(`${where}: conversations[${i}] must be an object with string "from" and "value" (for {"role", "content"} turns, map the column with --data-columns messages=conversations).`);
    }
    const role = SHAREGPT_ROLES[t['from']];
    if (role === undefined) throw new DataError(`${where}: conversations[${i}] has "from": ${JSON.stringify(t['from'])}; ShareGPT speakers are ${Object.keys(SHAREGPT_ROLES).join(', ')}.`);
    return { role, content: t['value'] };
  });
}
