import { isIP } from 'node:net';
import { ApiError } from './api-error.js';
import { ServeOptionError } from './serve-option-error.js';

/** Names every loopback server answers to, as they appear in a Host header (IPv6 in brackets). */
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'] as const;

/** A DNS name (labels of letters, digits and inner hyphens), an IPv4 address, or an IPv6 address in brackets. */
const HOST_NAME = /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])$/;

/** Whether `name` (lower case, no port) is a DNS name, an IPv4 address or a bracketed IPv6 address. */
export function isHostName(name: string): boolean {
  return HOST_NAME.test(name);
}

/** Whether the server listens on a loopback address only, where a browser page can reach it through DNS rebinding. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

/**
 * The host names Host headers must name, or null to accept any. A loopback server accepts the loopback names plus
 * `allowedHosts`; any other server accepts every Host unless `allowedHosts` is given, then those, the loopback names
 * and the address it is bound to.
 */
export function allowedHostNames(bindHost: string, allowedHosts: readonly string[]): ReadonlySet<string> | null {
  const extra = allowedHosts.map((h) => {
    const name = h.trim().toLowerCase();
    if (!isHostName(name)) throw new ServeOptionError(`--allowed-hosts entry ${JSON.stringify(h)} is not a host name; give names such as api.example.com or 10.0.0.5, without a port.`);
    return name;
  });
  if (!isLoopbackHost(bindHost) && extra.length === 0) return null;
  const bound = isIP(bindHost) === 6 ? `[${bindHost.toLowerCase()}]` : bindHost.toLowerCase();
  const wildcard = bound === '0.0.0.0' || bound === '[::]';
  return new Set([...LOOPBACK_NAMES, ...extra, ...(wildcard ? [] : [bound])]);
}

/** Whether a Host header names one of `names`, with no port or with the port the server listens on. */
export function hostMatches(header: string, names: ReadonlySet<string>, port: number): boolean {
  const match = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(header.toLowerCase());
  if (!match) return false;
  return names.has(match[1]!) && (match[2] === undefined || Number(match[2]) === port);
}

export function hostNotAllowed(header: string): ApiError {
  return new ApiError(
    403,
    `The Host header ${JSON.stringify(header)} does not name this server, which answers localhost, 127.0.0.1, [::1] and the names given to --allowed-hosts.`,
    'permission_error',
    'host_not_allowed',
  );
}
