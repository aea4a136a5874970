import { randomUUID } from 'node:crypto';
import type { GenerationResult, Usage } from './generation-job.js';
import type { FinishReason } from './sequence.js';

/**
 * How one endpoint spells its responses: the whole body, and the chunks of a stream (OpenAI's exact field sets,
 * so that the official clients parse them).
 */
export interface ResponseFormat {
  /** Chunks sent before any text (the chat role delta). */
  opening(): object[];
  text(delta: string): object;
  /** The chunk that carries the finish reason. */
  finish(reason: FinishReason): object;
  /** stream_options.include_usage: the last chunk, with no choices. */
  usage(usage: Usage): object;
  body(result: GenerationResult): object;
}

function header(object: string, prefix: string, model: string) {
  return { id: `${prefix}-${randomUUID().replace(/-/g, '')}`, object, created: Math.floor(Date.now() / 1000), model, system_fingerprint: null };
}

/** POST /v1/completions. `streamUsage`: every chunk carries "usage": null, as OpenAI sends with include_usage. */
export function completionFormat(model: string, streamUsage: boolean): ResponseFormat {
  const head = header('text_completion', 'cmpl', model);
  const extra = streamUsage ? { usage: null } : {};
  const choice = (text: string, finish: FinishReason | null) => ({ text, index: 0, logprobs: null, finish_reason: finish });
  return {
    opening: () => [],
    text: (delta) => ({ ...head, choices: [choice(delta, null)], ...extra }),
    finish: (reason) => ({ ...head, choices: [choice('', reason)], ...extra }),
    usage: (usage) => ({ ...head, choices: [], usage }),
    body: (r) => ({ ...head, choices: [choice(r.text, r.finishReason)], usage: r.usage }),
  };
}

/** POST /v1/chat/completions. */
export function chatFormat(model: string, streamUsage: boolean): ResponseFormat {
  const head = header('chat.completion', 'chatcmpl', model);
  const chunkHead = { ...head, object: 'chat.completion.chunk' };
  const extra = streamUsage ? { usage: null } : {};
  const chunk = (delta: object, finish: FinishReason | null) => ({
    ...chunkHead,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...extra,
  });
  return {
    opening: () => [chunk({ role: 'assistant', content: '' }, null)],
    text: (delta) => chunk({ content: delta }, null),
    finish: (reason) => chunk({}, reason),
    usage: (usage) => ({ ...chunkHead, choices: [], usage }),
    body: (r) => ({
      ...head,
      choices: [{ index: 0, message: { role: 'assistant', content: r.text, refusal: null }, logprobs: null, finish_reason: r.finishReason }],
      usage: r.usage,
    }),
  };
}
