import type { FastifyError, FastifyInstance } from 'fastify';
import { ApiError, internalError } from './api-error.js';

/**
 * Every error leaves the server as OpenAI-style JSON: ApiErrors as they are, Fastify's own 4xx refusals (body too
 * large, malformed JSON, wrong content type) with their status, anything else as a logged 500 without details.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | ApiError, request, reply) => {
    if (error instanceof ApiError) return reply.code(error.status).send(error.toBody());
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) return reply.code(status).send(fromFastify(error, status).toBody());
    request.log.error(error);
    return reply.code(500).send(internalError().toBody());
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send(new ApiError(404, `No route ${request.method} ${request.url.split('?')[0]}.`, 'invalid_request_error', 'not_found').toBody()),
  );
}

function fromFastify(error: FastifyError, status: number): ApiError {
  switch (status) {
    case 413:
      return new ApiError(413, `${error.message}; send a smaller request.`, 'invalid_request_error', 'request_too_large');
    case 415:
      return new ApiError(415, `${error.message}; send JSON with "Content-Type: application/json".`, 'invalid_request_error', 'unsupported_media_type');
    default:
      return new ApiError(status, error.message, 'invalid_request_error', /JSON/i.test(error.code ?? '') || error instanceof SyntaxError ? 'invalid_json' : 'invalid_request');
  }
}
