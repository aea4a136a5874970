import type { FastifyInstance } from 'fastify';
import { isHostName } from './host-check.js';
import { ServeOptionError } from './serve-option-error.js';

/** The origins whose browser pages may read the server's responses; `any` when `*` was given. */
export interface CorsPolicy {
  readonly any: boolean;
  readonly origins: ReadonlySet<string>;
}

/** scheme://host[:port], nothing after it; the host part is checked by isHostName as --allowed-hosts entries are. */
const ORIGIN = /^([a-z][a-z0-9+.-]*):\/\/(\[[^\]]*\]|[^:/?#@]*)(?::(\d{1,5}))?$/;

/** Browsers leave these ports out of the Origin header they send, so a listed origin drops them too. */
const DEFAULT_PORTS: Readonly<Record<string, string>> = { http: '80', https: '443' };

const ALLOWED_METHODS = 'GET, POST, DELETE';

/**
 * Request headers a preflight may ask for: the API key and JSON body, the official openai client's (OpenAI-*,
 * X-Stainless-*) and the User-Agent that it and the AI SDK's OpenAI provider set. Accept is CORS-safelisted.
 */
const ALLOWED_HEADERS = [
  'Authorization',
  'Content-Type',
  'OpenAI-Organization',
  'OpenAI-Project',
  'OpenAI-Beta',
  'User-Agent',
  'X-Stainless-Lang',
  'X-Stainless-Package-Version',
  'X-Stainless-OS',
  'X-Stainless-Arch',
  'X-Stainless-Runtime',
  'X-Stainless-Runtime-Version',
  'X-Stainless-Retry-Count',
  'X-Stainless-Timeout',
  'X-Stainless-Helper-Method',
].join(', ');

/** Seconds a browser may reuse a preflight answer: Chromium's cap (Firefox allows a day). */
const PREFLIGHT_MAX_AGE_S = 7200;

/** The policy for `--cors-origin` values, or null (no CORS headers at all) when none is given. */
export function corsPolicy(values: readonly string[]): CorsPolicy | null {
  if (values.length === 0) return null;
  const origins = new Set<string>();
  let any = false;
  for (const value of values) {
    const origin = value.trim().toLowerCase();
    if (origin === '*') any = true;
    else origins.add(canonicalOrigin(origin, value));
  }
  return { any, origins };
}

function canonicalOrigin(origin: string, value: string): string {
  const match = ORIGIN.exec(origin);
  const port = match?.[3];
  if (!match || !isHostName(match[2]!) || (port !== undefined && (Number(port) < 1 || Number(port) > 65535))) {
    throw new ServeOptionError(
      `--cors-origin ${JSON.stringify(value)} is not an origin; give scheme://host[:port] with no path, such as https://app.example or http://localhost:5173, or * for any origin.`,
    );
  }
  return port === DEFAULT_PORTS[match[1]!] ? `${match[1]}://${match[2]}` : origin;
}

/**
 * Answers preflights from allowed origins (204) and marks every response to them readable by the page, streamed
 * ones included since the headers are set before any route runs. Requests from other origins, and preflights from
 * them, go on as if no CORS were configured. Install after the Host check and before the API-key check: a
 * preflight never carries the key.
 */
export function installCors(app: FastifyInstance, policy: CorsPolicy): void {
  app.addHook('onRequest', async (request, reply) => {
    reply.header('vary', 'Origin');
    const origin = request.headers.origin;
    if (origin === undefined || !(policy.any || policy.origins.has(origin))) return;
    reply.header('access-control-allow-origin', policy.any ? '*' : origin);
    if (request.method !== 'OPTIONS' || request.headers['access-control-request-method'] === undefined) return;
    reply
      .code(204)
      .header('access-control-allow-methods', ALLOWED_METHODS)
      .header('access-control-allow-headers', ALLOWED_HEADERS)
      .header('access-control-max-age', String(PREFLIGHT_MAX_AGE_S))
      .send();
    return reply;
  });
}
