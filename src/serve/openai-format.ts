import { randomUUID } from 'node:crypto';
import type { ApiError } from './api-error.js';
import type { ChoiceDelta } from './choice-output.js';
import type { GenerationResult } from './generation-job.js';
import type { LogprobEntry } from './logprob-entry.js';
import type { FinishReason } from './sequence.js';
import { ChoiceToolCalls, type ChatToolCall, type ToolCalling } from './tools/choice-tool-calls.js';

/**
 * How one endpoint spells its responses: the whole body, and the events of a stream (OpenAI's exact field sets,
 * so that the official clients parse them).
 */
export interface ResponseFormat {
  /** Events sent before any text (the chat role delta of each of `choices`). */
  opening(choices: number): object[];
  delta(delta: ChoiceDelta): object[];
  /** Events after the last token: each choice's finish reason, then the usage where the request asked for it. */
  closing(result: GenerationResult): object[];
  /** The event that reports a failure once the stream has begun. */
  failure(error: ApiError): object;
  body(result: GenerationResult): object;
  /** Events go out with an `event: <type>` line and the stream ends without "data: [DONE]" (the Responses API's). */
  readonly typedEvents: boolean;
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
    delta: (d) => [{ ...head, choices: [choice(d.index, d.text, d.logprobs, null)], ...extra }],
    closing: (r) => [
      ...r.choices.map((c) => ({ ...head, choices: [choice(c.index, '', null, c.finishReason)], ...extra })),
      ...(streamUsage ? [{ ...head, choices: [], usage: r.usage }] : []),
    ],
    failure: (error) => error.toBody(),
    body: (r) => ({ ...head, choices: r.choices.map((c) => choice(c.index, c.text, c.logprobs, c.finishReason)), usage: r.usage }),
    typedEvents: false,
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

/** A chat choice's finish reason: "tool_calls" where it called a tool and was not cut off by length. */
function chatFinish(reason: FinishReason, called: boolean): FinishReason | 'tool_calls' {
  return called && reason !== 'length' ? 'tool_calls' : reason;
}

/**
 * POST /v1/chat/completions. With `tools`, each choice's output is split into content and tool_calls: streamed as
 * OpenAI streams them (a call's id and name first, then its arguments), with log-probabilities riding on the next
 * chunk sent once their text is known to be content or a call.
 */
export function chatFormat(model: string, streamUsage: boolean, tools: ToolCalling | null): ResponseFormat {
  const head = header('chat.completion', 'chatcmpl', model);
  const chunkHead = { ...head, object: 'chat.completion.chunk' };
  const extra = streamUsage ? { usage: null } : {};
  const chunk = (index: number, delta: object, logprobs: readonly LogprobEntry[] | null, finish: string | null) => ({
    ...chunkHead,
    choices: [{ index, delta, logprobs: chatLogprobs(logprobs), finish_reason: finish }],
    ...extra,
  });
  const streams = new Map<number, { calls: ChoiceToolCalls; logprobs: LogprobEntry[] | null }>();
  const streamOf = (index: number, tools: ToolCalling) => {
    let state = streams.get(index);
    if (!state) streams.set(index, (state = { calls: new ChoiceToolCalls(tools), logprobs: null }));
    return state;
  };
  /** A choice's tool-call step as chunks; the log-probabilities held for the choice ride on the first. */
  const toolChunks = (index: number, state: { logprobs: LogprobEntry[] | null }, content: string, calls: readonly ChatToolCall[]) => {
    const deltas: object[] = [
      ...(content ? [{ content }] : []),
      ...calls.flatMap((call) => [
        { tool_calls: [{ index: call.index, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } }] },
        { tool_calls: [{ index: call.index, function: { arguments: call.function.arguments } }] },
      ]),
    ];
    const chunks = deltas.map((delta, i) => chunk(index, delta, state.logprobs && (i === 0 ? state.logprobs : []), null));
    if (chunks.length > 0 && state.logprobs) state.logprobs = [];
    return chunks;
  };
  return {
    opening: (choices) => Array.from({ length: choices }, (_, i) => chunk(i, { role: 'assistant', content: '' }, null, null)),
    delta: (d) => {
      if (!tools) return [chunk(d.index, { content: d.text }, d.logprobs, null)];
      const state = streamOf(d.index, tools);
      if (d.logprobs) state.logprobs = [...(state.logprobs ?? []), ...d.logprobs];
      const step = state.calls.push(d.text);
      return toolChunks(d.index, state, step.content, step.calls);
    },
    closing: (r) => [
      ...r.choices.flatMap((c) => {
        if (!tools) return [chunk(c.index, {}, null, c.finishReason)];
        const state = streamOf(c.index, tools);
        const step = state.calls.finish();
        const sent = toolChunks(c.index, state, step.content, step.calls);
        return [...sent, chunk(c.index, {}, state.logprobs?.length ? state.logprobs : null, chatFinish(c.finishReason, state.calls.called))];
      }),
      ...(streamUsage ? [{ ...chunkHead, choices: [], usage: r.usage }] : []),
    ],
    failure: (error) => error.toBody(),
    body: (r) => ({
      ...head,
      choices: r.choices.map((c) => {
        const split = tools ? ChoiceToolCalls.split(c.text, tools) : null;
        const message = split && split.calls.length > 0
          ? { role: 'assistant', content: split.content || null, refusal: null, tool_calls: split.calls.map(({ index: _, ...call }) => call) }
          : { role: 'assistant', content: split ? split.content : c.text, refusal: null };
        return { index: c.index, message, logprobs: chatLogprobs(c.logprobs), finish_reason: chatFinish(c.finishReason, (split?.calls.length ?? 0) > 0) };
      }),
      usage: r.usage,
    }),
    typedEvents: false,
  };
}
