import { createHash } from 'node:crypto';
import { writeAll, writeFileAtomically } from './atomic-write.js';
import { HubError } from './errors.js';

export interface HubRequest {
  /** Base URL of the Hub, without a trailing slash. */
  endpoint: string;
  repoId: string;
  /** Branch, tag or commit hash. */
  revision: string;
  token: string | undefined;
}

/** What the Hub says about one file before its bytes arrive. */
export interface HubFileHead {
  commit: string;
  /** Normalized ETag: the sha256 of the contents for LFS files, the git blob sha1 otherwise. */
  etag: string;
  /** The response whose body carries the file; cancel it when the blob is already cached. */
  response: Response;
  url: string;
}

/** The Hub has no such file at that revision; `commit` is the commit it looked at, when it said. */
export interface HubFileMissing {
  missing: true;
  commit: string | null;
}

const MAX_REDIRECTS = 10;

/** Commit hashes and ETags become file names in the cache, so they may not contain path separators or "..". */
const SAFE_NAME = /^(?!\.\.?$)[A-Za-z0-9._-]{1,128}$/;

export function resolveUrl(req: HubRequest, file: string): string {
  const path = file.split('/').map(encodeURIComponent).join('/');
  return `${req.endpoint}/${req.repoId}/resolve/${encodeURIComponent(req.revision)}/${path}`;
}

/**
 * Starts downloading `file`, following redirects by hand so that the Hub's own headers (X-Repo-Commit, X-Linked-Etag),
 * which sit on the redirect to the CDN, are seen, and so that the token is sent only to the Hub's origin.
 * A 404 for the file (not for the repo or revision) comes back as HubFileMissing: the caller decides whether the
 * file was optional.
 */
export async function requestHubFile(req: HubRequest, file: string): Promise<HubFileHead | HubFileMissing> {
  const url = resolveUrl(req, file);
  const origin = new URL(url).origin;
  let commit: string | null = null;
  let etag: string | null = null;
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const headers: Record<string, string> = { 'user-agent': 'loraforge', 'accept-encoding': 'identity' };
    if (req.token && new URL(current).origin === origin) headers.authorization = `Bearer ${req.token}`;
    let response: Response;
    try {
      response = await fetch(current, { headers, redirect: 'manual' });
    } catch (err) {
      throw new HubError(
        current,
        null,
        `Could not reach ${origin} to download ${file} of ${req.repoId} (${describeCause(err)}); check the network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only the cache.`,
      );
    }
    commit ??= response.headers.get('x-repo-commit');
    etag ??= normalizeEtag(response.headers.get('x-linked-etag') ?? (response.headers.has('x-repo-commit') ? response.headers.get('etag') : null));
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location !== null) {
      await response.body?.cancel();
      current = new URL(location, current).href;
      continue;
    }
    if (response.status === 404 && response.headers.get('x-error-code') !== 'RepoNotFound' && response.headers.get('x-error-code') !== 'RevisionNotFound') {
      await response.body?.cancel();
      return { missing: true, commit: commit !== null && SAFE_NAME.test(commit) ? commit : null };
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw httpError(req, file, url, response);
    }
    etag ??= normalizeEtag(response.headers.get('etag'));
    if (commit === null || etag === null || !SAFE_NAME.test(commit) || !SAFE_NAME.test(etag)) {
      await response.body?.cancel();
      throw new HubError(url, response.status, `${origin} answered ${url} without usable X-Repo-Commit and ETag headers; set HF_ENDPOINT to a Hugging Face Hub (or mirror) URL.`);
    }
    return { commit, etag, response, url };
  }
  throw new HubError(url, null, `Downloading ${url} was redirected more than ${MAX_REDIRECTS} times; check HF_ENDPOINT.`);
}

/**
 * Streams a response body into `path` atomically. The size is checked against Content-Length, and the contents
 * against the ETag when that is a sha256 (LFS files), so a cut connection never leaves a plausible-looking file.
 */
export async function saveBody(head: HubFileHead, path: string): Promise<void> {
  const body = head.response.body;
  if (body === null) throw new HubError(head.url, head.response.status, `${head.url} returned no body; try again.`);
  const expectedLength = Number(head.response.headers.get('content-length') ?? NaN);
  const sha256 = /^[0-9a-f]{64}$/.test(head.etag) ? createHash('sha256') : null;
  await writeFileAtomically(path, async (handle) => {
    let received = 0;
    try {
      for await (const chunk of body) {
        await writeAll(handle, chunk);
        sha256?.update(chunk);
        received += chunk.byteLength;
      }
    } catch (err) {
      if (!(err instanceof TypeError)) throw err;
      throw new HubError(head.url, head.response.status, `Download of ${head.url} was interrupted after ${received} bytes (${describeCause(err)}); run again to retry.`);
    }
    if (Number.isFinite(expectedLength) && received !== expectedLength) {
      throw new HubError(head.url, head.response.status, `Download of ${head.url} stopped after ${received} of ${expectedLength} bytes; run again to retry.`);
    }
    if (sha256 !== null && sha256.digest('hex') !== head.etag) {
      throw new HubError(head.url, head.response.status, `Download of ${head.url} does not match its sha256 ${head.etag}; run again to retry.`);
    }
  });
}

function httpError(req: HubRequest, file: string, url: string, response: Response): HubError {
  const code = response.headers.get('x-error-code');
  const what = `${req.repoId} (revision ${req.revision})`;
  switch (true) {
    case response.status === 401 && req.token === undefined:
      return new HubError(url, 401, `The Hub refused ${file} of ${what} without a token (401): the repo is private, gated or does not exist; set HF_TOKEN to an access token that can read it, and check the repo id.`);
    case response.status === 401:
      return new HubError(url, 401, `The Hub refused the token for ${file} of ${what} (401): the token is invalid or cannot read this repo, or the repo does not exist; set HF_TOKEN to a valid access token and check the repo id.`);
    case response.status === 403 || code === 'GatedRepo':
      return new HubError(url, response.status, `The Hub denied access to ${file} of ${what} (${response.status}): the repo is gated; accept its terms on the model page, then set HF_TOKEN to a token of that account.`);
    case code === 'RepoNotFound':
      return new HubError(url, response.status, `The Hub has no repo ${req.repoId} (or it is private); check the id, or set HF_TOKEN if it is private.`);
    case code === 'RevisionNotFound':
      return new HubError(url, response.status, `${req.repoId} has no revision ${req.revision}; check the branch, tag or commit name.`);
    default:
      return new HubError(url, response.status, `The Hub answered ${response.status} ${response.statusText} for ${url}; try again later.`);
  }
}

/** huggingface_hub's normalization: drop a weak-validator prefix and the quotes. */
function normalizeEtag(etag: string | null): string | null {
  if (etag === null) return null;
  const value = etag.replace(/^W\//, '').replace(/^"|"$/g, '');
  return value === '' ? null : value;
}

function describeCause(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message;
}
