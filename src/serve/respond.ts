import { PassThrough } from 'node:stream';
import type { FastifyReply } from 'fastify';
import { ApiError, internalError } from './api-error.js';
import type { GenerationJob } from './generation-job.js';
import type { GenerationParams } from './generation-params.js';
import type { ResponseFormat } from './openai-format.js';

/**
 * Runs a prepared job and answers with one JSON body, or with server-sent events ending in "data: [DONE]".
 * Refusals that happen before the first byte (a full queue) become ordinary error responses; failures after it
 * (a timeout) arrive as an error event in the stream. A client that disconnects cancels the generation.
 */
export async function respond(reply: FastifyReply, job: GenerationJob, format: ResponseFormat, params: GenerationParams): Promise<unknown> {
  const controller = new AbortController();
  reply.raw.on('close', () => {
    if (reply.raw.writableFinished) return;
    controller.abort();
    // A client that half-closed its side would otherwise keep the socket (and server shutdown) waiting.
    reply.raw.destroy();
  });
  if (!params.stream) {
    const result = await job.start(controller.signal, () => {}).result;
    // The client is gone; there is no one to answer.
    if (!result) return reply.code(499).send();
    return format.body(result);
  }

  const events = new PassThrough();
  // Writes after a disconnect are dropped, never thrown.
  events.on('error', () => {});
  const send = (payload: object | string) => {
    if (!events.destroyed && !events.writableEnded) events.write(`data: ${typeof payload === 'string' ? payload : JSON.stringify(payload)}\n\n`);
  };
  // The role chunks go out before start(), whose echoed prompts are sent at once.
  for (const chunk of format.opening(params.n)) send(chunk);
  const started = job.start(controller.signal, (delta) => send(format.delta(delta)));
  started.result.then(
    (result) => {
      if (result) {
        for (const c of result.choices) send(format.finish(c.index, c.finishReason));
        if (params.includeUsage) send(format.usage(result.usage));
      }
      send('[DONE]');
      events.end();
    },
    (error: unknown) => {
      send((error instanceof ApiError ? error : internalError()).toBody());
      send('[DONE]');
      events.end();
    },
  );
  return reply
    .header('content-type', 'text/event-stream; charset=utf-8')
    .header('cache-control', 'no-cache')
    .header('x-accel-buffering', 'no')
    .send(events);
}
