import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after } from 'node:test';

export interface FakeRepo {
  /** Folder whose files the repo serves. */
  folder: string;
  commit: string;
  /** When set, requests must carry `Authorization: Bearer <token>` or get 401. */
  token?: string;
  /** Serve these bytes instead of the real contents of a file (to simulate corruption in transit). */
  corrupt?: Record<string, Uint8Array>;
  /** Announce the full Content-Length of a file but drop the connection after this many bytes. */
  cutAfter?: Record<string, number>;
}

export interface FakeHub {
  endpoint: string;
  /** Every request: method, path and the Authorization header it carried. */
  log: { method: string; path: string; authorization: string | undefined }[];
}

/**
 * A loopback HTTP server that answers like huggingface.co: `/<repo>/resolve/<revision>/<file>` with X-Repo-Commit
 * and ETag (git blob sha1) for small files, and for *.safetensors (LFS) a 302 to `/cdn/<sha256>` carrying
 * X-Linked-Etag. Unknown files get 404 EntryNotFound, unknown repos 404 RepoNotFound, unknown revisions 404
 * RevisionNotFound; the revision may be "main" or the commit hash.
 */
export async function startFakeHub(repos: Record<string, FakeRepo>): Promise<FakeHub> {
  const log: FakeHub['log'] = [];
  const cdn = new Map<string, Uint8Array>();
  const contents = new Map<string, Map<string, Uint8Array>>();
  for (const [id, repo] of Object.entries(repos)) {
    const files = new Map<string, Uint8Array>();
    for (const name of await readdir(repo.folder)) files.set(name, new Uint8Array(await readFile(join(repo.folder, name))));
    contents.set(id, files);
  }

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    log.push({ method: req.method ?? '', path, authorization: req.headers.authorization });
    const cdnMatch = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
    if (cdnMatch) {
      const body = cdn.get(cdnMatch[1]!);
      if (!body) return void res.writeHead(404).end();
      return void res.writeHead(200, { 'content-length': body.byteLength, etag: `"${cdnMatch[1]}"` }).end(body);
    }
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const repo = m ? repos[m[1]!] : undefined;
    if (!m || !repo) return void res.writeHead(404, { 'x-error-code': 'RepoNotFound' }).end('Repository not found');
    if (repo.token !== undefined && req.headers.authorization !== `Bearer ${repo.token}`) {
      return void res.writeHead(401, { 'x-error-code': 'RepoNotFound' }).end('Invalid credentials');
    }
    const [, id, revision, file] = m as unknown as [string, string, string, string];
    if (revision !== 'main' && revision !== repo.commit) return void res.writeHead(404, { 'x-error-code': 'RevisionNotFound' }).end();
    const real = contents.get(id)!.get(file);
    if (!real) return void res.writeHead(404, { 'x-error-code': 'EntryNotFound', 'x-repo-commit': repo.commit }).end('Entry not found');
    const served = repo.corrupt?.[file] ?? real;
    if (file.endsWith('.safetensors')) {
      const sha256 = createHash('sha256').update(real).digest('hex');
      cdn.set(sha256, served);
      return void res
        .writeHead(302, { location: `/cdn/${sha256}`, 'x-repo-commit': repo.commit, 'x-linked-etag': `"${sha256}"`, 'x-linked-size': real.byteLength })
        .end();
    }
    const gitSha = createHash('sha1').update(`blob ${real.byteLength}\0`).update(real).digest('hex');
    const cut = repo.cutAfter?.[file];
    if (cut !== undefined) {
      res.writeHead(200, { 'content-length': real.byteLength, etag: `"${gitSha}"`, 'x-repo-commit': repo.commit });
      res.write(real.subarray(0, cut), () => res.destroy());
      return;
    }
    res.writeHead(200, { 'content-length': served.byteLength, etag: `"${gitSha}"`, 'x-repo-commit': repo.commit }).end(served);
  };

  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { endpoint: `http://127.0.0.1:${port}`, log };
}
