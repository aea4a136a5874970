import { PassThrough } from 'node:stream';
import type { FastifyReply } from 'fastify';
import { ApiError, internalError } from './api-error.js';
import type { GenerationJob } from './generation-job.js';
import type { GenerationParams } from './generation-params.js';
import type { ResponseFormat } from './openai-format.js';

/**
 * Runs a prepared job and answers with one JSON body, or with server-sent events (ending in "data: [DONE]" unless
 * the format's events are typed).
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
  const write = (text: string) => {
    if (!events.destroyed && !events.writableEnded) events.write(text);
  };
  // Typed events name their type on an event line, as the Responses API streams them.
  const send = (payload: object) => {
    const type = format.typedEvents && 'type' in payload ? `event: ${String(payload.type)}\n` : '';
    write(`${type}data: ${JSON.stringify(payload)}\n\n`);
  };
  const end = () => {
    if (!format.typedEvents) write('data: [DONE]\n\n');
    events.end();
  };
  // The opening events go out before start(), whose echoed prompts are sent at once.
  for (const event of format.opening(params.n)) send(event);
  const started = job.start(controller.signal, (delta) => format.delta(delta).forEach(send));
  started.result.then(
    (result) => {
      if (result) format.closing(result).forEach(send);
      end();
    },
    (error: unknown) => {
      send(format.failure(error instanceof ApiError ? error : internalError()));
      end();
    },
  );
  return reply
    .header('content-type', 'text/event-stream; charset=utf-8')
    .header('cache-control', 'no-cache')
    .header('x-accel-buffering', 'no')
    .send(events);
}
