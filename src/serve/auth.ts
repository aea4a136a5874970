import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Checks an Authorization header against the server's key in constant time (comparing SHA-256 digests, so that
 * neither the key's content nor its length leaks through timing).
 */
export function bearerMatches(header: string | undefined, apiKey: string): boolean {
  const match = /^Bearer\s+(.+)$/i.exec(header ?? '');
  if (!match) return false;
  return timingSafeEqual(digest(match[1]!.trim()), digest(apiKey));
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
