import { createHash, type Hash } from 'node:crypto';
import { datasetInfo, downloadFile, listFiles, modelInfo, pathsInfo, type ListFileEntry, type PathInfo } from '@huggingface/hub';
import { writeAll, writeFileAtomically } from './atomic-write.js';
import { HubError } from './errors.js';
import type { HubRepo } from './hub-cache.js';

/** A file of a repo at one commit, as the Hub describes it. */
export interface RemoteFile {
  path: string;
  /** Bytes. */
  size: number;
  /** The blob's name in the cache and the digest its bytes must have: sha256 for LFS (and Xet) files, else the git blob sha1. */
  etag: string;
  digest: 'sha256' | 'git-sha1';
}

export interface HubConnection {
  /** Base URL of the Hub, without a trailing slash. */
  endpoint: string;
  token: string | undefined;
}

/** Commit hashes and ETags become file names in the cache, so they may not contain path separators or "..". */
const SAFE_NAME = /^(?!\.\.?$)[A-Za-z0-9._-]{1,128}$/;

/**
 * One repo on the Hub through @huggingface/hub: the commit a revision points to, which files exist, and their bytes.
 * Every HTTP failure becomes a HubError whose message names the repo, the revision and the fix.
 */
export class HubClient {
  readonly label: string;

  constructor(
    readonly repo: HubRepo,
    private readonly conn: HubConnection,
    private readonly revision: string,
  ) {
    // @huggingface/hub refuses other tokens with a TypeError; say which setting holds it instead.
    if (conn.token !== undefined && !conn.token.startsWith('hf_')) {
      throw new HubError(conn.endpoint, null, 'The Hub token (HF_TOKEN or the token option) does not start with hf_; set it to a Hugging Face access token from https://huggingface.co/settings/tokens.');
    }
    this.label = `${repo.type === 'dataset' ? 'dataset ' : ''}${repo.name} (revision ${revision})`;
  }

  /** The commit hash the revision points to now. */
  async commit(): Promise<string> {
    const params = { name: this.repo.name, revision: this.revision, additionalFields: ['sha' as const], ...this.params('the revision info') };
    const { sha } = this.repo.type === 'dataset' ? await datasetInfo(params) : await modelInfo(params);
    if (typeof sha !== 'string' || !SAFE_NAME.test(sha)) {
      throw new HubError(this.conn.endpoint, null, `${this.conn.endpoint} answered the revision info of ${this.label} without a usable commit hash; set HF_ENDPOINT to a Hugging Face Hub (or mirror) URL.`);
    }
    return sha;
  }

  /** The files among `paths` that exist at `commit`, by path; absent paths are not in the map. */
  async describe(commit: string, paths: readonly string[]): Promise<Map<string, RemoteFile>> {
    const found = new Map<string, RemoteFile>();
    if (paths.length === 0) return found;
    const infos = await pathsInfo({ repo: this.repo, paths: [...paths], revision: commit, ...this.params(paths.length === 1 ? paths[0]! : `${paths.length} files`) });
    for (const info of infos) if (info.type === 'file') found.set(info.path, this.remoteFile(info));
    return found;
  }

  /** Every file of the repo at `commit`. */
  async listFiles(commit: string): Promise<RemoteFile[]> {
    const files: RemoteFile[] = [];
    for await (const entry of listFiles({ repo: this.repo, revision: commit, recursive: true, ...this.params('the file list') })) {
      if (entry.type === 'file') files.push(this.remoteFile(entry));
    }
    return files;
  }

  /**
   * Streams `file` at `commit` into `dest` atomically. The size and the digest are checked against what the Hub
   * listed, so a cut connection or corrupted bytes never leave a plausible-looking blob.
   */
  async download(commit: string, file: RemoteFile, dest: string): Promise<void> {
    const fetcher = this.params(file.path);
    const blob = await downloadFile({ repo: this.repo, path: file.path, revision: commit, ...fetcher });
    if (blob === null) throw new HubError(this.conn.endpoint, 404, `${this.label} lists ${file.path} but does not serve it; try again later, or pick another revision.`);
    const hash = digestOf(file.digest, file.size);
    let received = 0;
    await writeFileAtomically(dest, async (handle) => {
      try {
        for await (const chunk of blob.stream()) {
          await writeAll(handle, chunk);
          hash.update(chunk);
          received += chunk.byteLength;
        }
      } catch (err) {
        throw fetcher.failure() ?? new HubError(this.conn.endpoint, null, `Download of ${file.path} of ${this.label} was interrupted after ${received} bytes (${describeCause(err)}); run again to retry.`);
      }
      if (received !== file.size) {
        throw new HubError(this.conn.endpoint, null, `Download of ${file.path} of ${this.label} stopped after ${received} of ${file.size} bytes; run again to retry.`);
      }
      if (hash.digest('hex') !== file.etag) {
        throw new HubError(this.conn.endpoint, null, `Download of ${file.path} of ${this.label} does not match its ${file.digest === 'sha256' ? 'sha256' : 'git blob sha1'} ${file.etag}; run again to retry.`);
      }
    });
  }

  private remoteFile(info: PathInfo | ListFileEntry): RemoteFile {
    const etag = info.lfs?.oid ?? info.oid;
    if (etag === undefined || !SAFE_NAME.test(etag)) {
      throw new HubError(this.conn.endpoint, null, `${this.conn.endpoint} listed ${info.path} of ${this.label} without a usable object id; set HF_ENDPOINT to a Hugging Face Hub (or mirror) URL.`);
    }
    return { path: info.path, size: info.size, etag, digest: info.lfs ? 'sha256' : 'git-sha1' };
  }

  /**
   * The connection settings @huggingface/hub takes, with a fetch that turns an unreachable server or an error status
   * into a HubError about `what` (the library would otherwise throw its own, less specific, errors). `failure()` is
   * the error it last raised, for the stream of a download, which the library reports as a bare message.
   */
  private params(what: string): { hubUrl: string; accessToken?: string; fetch: typeof fetch; failure(): HubError | null } {
    let failure: HubError | null = null;
    const hubFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const url = input instanceof Request ? input.url : String(input);
      let response: Response;
      try {
        response = await fetch(input, init);
      } catch (err) {
        failure = new HubError(url, null, `Could not reach ${this.conn.endpoint} for ${what} of ${this.label} (${describeCause(err)}); check the network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only the cache.`);
        throw failure;
      }
      if (response.ok) return response;
      await response.body?.cancel();
      failure = this.httpError(what, url, response);
      throw failure;
    };
    return { hubUrl: this.conn.endpoint, ...(this.conn.token !== undefined ? { accessToken: this.conn.token } : {}), fetch: hubFetch as typeof fetch, failure: () => failure };
  }

  private httpError(what: string, url: string, response: Response): HubError {
    const code = response.headers.get('x-error-code');
    const kind = this.repo.type === 'dataset' ? 'dataset repo' : 'repo';
    const page = this.repo.type === 'dataset' ? 'dataset page' : 'model page';
    switch (true) {
      case response.status === 401 && this.conn.token === undefined:
        return new HubError(url, 401, `The Hub refused ${what} of ${this.label} without a token (401): the ${kind} is private, gated or does not exist; set HF_TOKEN to an access token that can read it, and check the id.`);
      case response.status === 401:
        return new HubError(url, 401, `The Hub refused the token for ${what} of ${this.label} (401): the token is invalid or cannot read this ${kind}, or it does not exist; set HF_TOKEN to a valid access token and check the id.`);
      case response.status === 403 || code === 'GatedRepo':
        return new HubError(url, response.status, `The Hub denied access to ${what} of ${this.label} (${response.status}): the ${kind} is gated; accept its terms on the ${page}, then set HF_TOKEN to a token of that account.`);
      case code === 'RepoNotFound':
        return new HubError(url, response.status, `The Hub has no ${kind} ${this.repo.name} (or it is private); check the id, or set HF_TOKEN if it is private.`);
      case code === 'RevisionNotFound':
        return new HubError(url, response.status, `${this.repo.name} has no revision ${this.revision}; check the branch, tag or commit name.`);
      case code === 'EntryNotFound':
        return new HubError(url, response.status, `${this.label} has no ${what}; check the repo id, the revision and the file name.`);
      default:
        return new HubError(url, response.status, `The Hub answered ${response.status} ${response.statusText} for ${url}; try again later.`);
    }
  }
}

/** The hash a file's ETag is: sha256 of the bytes (LFS), or git's blob sha1, which hashes a "blob <size>\0" header first. */
function digestOf(kind: RemoteFile['digest'], size: number): Hash {
  if (kind === 'sha256') return createHash('sha256');
  return createHash('sha1').update(`blob ${size}\0`);
}

function describeCause(err: unknown): string {
  if (typeof err === 'string') return err;
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message;
}
