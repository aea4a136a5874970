import { randomUUID } from 'node:crypto';
import type { ChoiceDelta } from './choice-output.js';
import type { GenerationResult, Usage } from './generation-job.js';
import type { LogprobEntry } from './logprob-entry.js';
import type { FinishReason } from './sequence.js';

/**
 * How one endpoint spells its responses: the whole body, and the chunks of a stream (OpenAI's exact field sets,
 * so that the official clients parse them).
 */
export interface ResponseFormat {
  /** Chunks sent before any text (the chat role delta of each of `choices`). */
  opening(choices: number): object[];
  delta(delta: ChoiceDelta): object;
  /** The chunk that carries a choice's finish reason. */
  finish(index: number, reason: FinishReason): object;
  /** stream_options.include_usage: the last chunk, with no choices. */
  usage(usage: Usage): object;
  body(result: GenerationResult): object;
}

function header(object: string, prefix: string, model: string) {
  return { id: `${prefix}-${randomUUID().replace(/-/g, '')}`, object, created: Math.floor(Date.now() / 1000), model, system_fingerprint: null };
}

/**
 * Completions' logprobs object: parallel lists, top_logprobs a token -> logprob map holding the chosen token too
 * (last, so that where two ids share a text the chosen one's value is the one shown).
 */
function completionLogprobs(entries: readonly LogprobEntry[] | null) {
  if (!entries) return null;
  return {
    tokens: entries.map((e) => e.token),
    token_logprobs: entries.map((e) => e.logprob),
    top_logprobs: entries.map((e) => (e.top && e.logprob !== null ? Object.fromEntries([...e.top.map((t) => [t.token, t.logprob]), [e.token, e.logprob]]) : null)),
    text_offset: entries.map((e) => e.offset),
  };
}

/** POST /v1/completions. `streamUsage`: every chunk carries "usage": null, as OpenAI sends with include_usage. */
export function completionFormat(model: string, streamUsage: boolean): ResponseFormat {
  const head = header('text_completion', 'cmpl', model);
  const extra = streamUsage ? { usage: null } : {};
  const choice = (index: number, text: string, logprobs: readonly LogprobEntry[] | null, finish: FinishReason | null) => ({
    text,
    index,
    logprobs: completionLogprobs(logprobs),
    finish_reason: finish,
  });
  return {
    opening: () => [],
    delta: (d) => ({ ...head, choices: [choice(d.index, d.text, d.logprobs, null)], ...extra }),
    finish: (index, reason) => ({ ...head, choices: [choice(index, '', null, reason)], ...extra }),
    usage: (usage) => ({ ...head, choices: [], usage }),
    body: (r) => ({ ...head, choices: r.choices.map((c) => choice(c.index, c.text, c.logprobs, c.finishReason)), usage: r.usage }),
  };
}

/** Chat's logprobs object: one entry per token, each with its own top_logprobs list. */
function chatLogprobs(entries: readonly LogprobEntry[] | null) {
  if (!entries) return null;
  return {
    content: entries.map((e) => ({
      token: e.token,
      logprob: e.logprob,
      bytes: e.bytes,
      top_logprobs: (e.top ?? []).map((t) => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })),
    })),
    refusal: null,
  };
}

/** POST /v1/chat/completions. */
export function chatFormat(model: string, streamUsage: boolean): ResponseFormat {
  const head = header('chat.completion', 'chatcmpl', model);
  const chunkHead = { ...head, object: 'chat.completion.chunk' };
  const extra = streamUsage ? { usage: null } : {};
  const chunk = (index: number, delta: object, logprobs: readonly LogprobEntry[] | null, finish: FinishReason | null) => ({
    ...chunkHead,
    choices: [{ index, delta, logprobs: chatLogprobs(logprobs), finish_reason: finish }],
    ...extra,
  });
  return {
    opening: (choices) => Array.from({ length: choices }, (_, i) => chunk(i, { role: 'assistant', content: '' }, null, null)),
    delta: (d) => chunk(d.index, { content: d.text }, d.logprobs, null),
    finish: (index, reason) => chunk(index, {}, null, reason),
    usage: (usage) => ({ ...chunkHead, choices: [], usage }),
    body: (r) => ({
      ...head,
      choices: r.choices.map((c) => ({
        index: c.index,
        message: { role: 'assistant', content: c.text, refusal: null },
        logprobs: chatLogprobs(c.logprobs),
        finish_reason: c.finishReason,
      })),
      usage: r.usage,
    }),
  };
}
