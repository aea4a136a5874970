import type { FastifyInstance } from 'fastify';
import { invalidRequest } from './api-error.js';

/**
 * Deepest nesting of arrays and objects a request body may have. The OpenAI bodies this server reads need 4
 * (messages[].content[] parts); the bound keeps every recursive reader of a body (the prompt and message parsers,
 * the chat template's filters) far from the stack's limit.
 */
export const MAX_JSON_DEPTH = 32;

/**
 * Replaces Fastify's JSON parser by one that refuses bodies nested deeper than MAX_JSON_DEPTH before parsing, then
 * parses as Fastify does ("__proto__" and "constructor.prototype" keys refused).
 */
export function installJsonBodyParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser<string>('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (exceedsDepth(body, MAX_JSON_DEPTH)) {
      done(invalidRequest(`The request body nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep; send a flatter body.`, null, 'json_too_deep'), undefined);
      return;
    }
    parse(request, body, done);
  });
}

/** Whether `text` opens more than `limit` arrays or objects inside one another; brackets inside strings do not count. */
export function exceedsDepth(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // a backslash escapes the next character, a quote included
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}
