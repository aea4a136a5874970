import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import { after } from 'node:test';

export interface FakeRepo {
  /** Folder whose files (subfolders included) the repo serves. */
  folder: string;
  commit: string;
  /** Default model. */
  type?: 'model' | 'dataset';
  /** When set, requests must carry `Authorization: Bearer <token>` or get 401. */
  token?: string;
  /** Serve these bytes instead of the real contents of a file (to simulate corruption in transit). */
  corrupt?: Record<string, Uint8Array>;
  /** When true, file downloads get 403 GatedRepo (the listings stay public, as on the Hub). */
  gated?: boolean;
  /** Announce the full Content-Length of a file but drop the connection after this many bytes. */
  cutAfter?: Record<string, number>;
}

export interface FakeHub {
  endpoint: string;
  /** Every request: method, path and the Authorization header it carried. */
  log: { method: string; path: string; authorization: string | undefined }[];
}

/** Files the Hub stores through LFS: their id is the sha256 and their bytes come from a CDN. */
const isLfs = (file: string): boolean => /\.(safetensors|parquet)$/.test(file);

interface FileEntry {
  real: Uint8Array;
  served: Uint8Array;
  gitSha: string;
  sha256: string;
}

/**
 * A loopback HTTP server that answers like huggingface.co does for @huggingface/hub: the revision info
 * (`/api/<type>s/<repo>/revision/<rev>`, with the commit as `sha`), `paths-info` and `tree` listings (git blob sha1
 * as `oid`, and for *.safetensors / *.parquet an `lfs` entry with the sha256), and `/[datasets/]<repo>/resolve/<rev>/<file>`
 * with Range support; LFS files redirect (302) to `/cdn/<sha256>`. Unknown repos get 404 RepoNotFound, unknown
 * revisions 404 RevisionNotFound, unknown files 404 EntryNotFound; the revision may be "main" or the commit hash.
 */
export async function startFakeHub(repos: Record<string, FakeRepo>): Promise<FakeHub> {
  const log: FakeHub['log'] = [];
  const cdn = new Map<string, Uint8Array>();
  const contents = new Map<string, Map<string, FileEntry>>();
  for (const [id, repo] of Object.entries(repos)) {
    const files = new Map<string, FileEntry>();
    for (const entry of await readdir(repo.folder, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const path = join(entry.parentPath, entry.name);
      const name = relative(repo.folder, path);
      const real = new Uint8Array(await readFile(path));
      const served = repo.corrupt?.[name] ?? real;
      const sha256 = createHash('sha256').update(real).digest('hex');
      if (isLfs(name)) cdn.set(sha256, served);
      files.set(name, { real, served, sha256, gitSha: createHash('sha1').update(`blob ${real.byteLength}\0`).update(real).digest('hex') });
    }
    contents.set(id, files);
  }

  const describe = (name: string, f: FileEntry) => ({
    type: 'file',
    path: name,
    oid: f.gitSha,
    size: f.real.byteLength,
    ...(isLfs(name) ? { lfs: { oid: f.sha256, size: f.real.byteLength, pointerSize: 134 } } : {}),
  });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = decodeURIComponent(url.pathname);
    log.push({ method: req.method ?? '', path, authorization: req.headers.authorization });
    const cdnMatch = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
    if (cdnMatch) {
      const body = cdn.get(cdnMatch[1]!);
      if (!body) return void res.writeHead(404).end();
      return sendBytes(req, res, body, body.byteLength, { etag: `"${cdnMatch[1]}"` });
    }
    const api = /^\/api\/(models|datasets)\/([^/]+\/[^/]+)\/(revision|paths-info|tree)\/([^/]+)$/.exec(path);
    const resolve = /^\/(datasets\/)?([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const type = api ? (api[1] === 'datasets' ? 'dataset' : 'model') : resolve?.[1] ? 'dataset' : 'model';
    const id = api?.[2] ?? resolve?.[2];
    const repo = id !== undefined ? repos[id] : undefined;
    if (!repo || (repo.type ?? 'model') !== type) return void res.writeHead(404, { 'x-error-code': 'RepoNotFound' }).end('Repository not found');
    if (repo.token !== undefined && req.headers.authorization !== `Bearer ${repo.token}`) {
      return void res.writeHead(401, { 'x-error-code': 'RepoNotFound' }).end('Invalid credentials');
    }
    const revision = (api?.[4] ?? resolve?.[3])!;
    if (revision !== 'main' && revision !== repo.commit) return void res.writeHead(404, { 'x-error-code': 'RevisionNotFound' }).end('Revision not found');
    const files = contents.get(id!)!;
    const json = (value: unknown) => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value));

    if (api?.[3] === 'revision') return json({ _id: 'x', id, sha: repo.commit, private: repo.token !== undefined });
    if (api?.[3] === 'tree') return json([...files].map(([name, f]) => describe(name, f)));
    if (api?.[3] === 'paths-info') {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const asked = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { paths: string[] }).paths;
      return json(asked.filter((p) => files.has(p)).map((p) => describe(p, files.get(p)!)));
    }
    const file = resolve![4]!;
    if (repo.gated) return void res.writeHead(403, { 'x-error-code': 'GatedRepo' }).end('Access to this repo is restricted');
    const entry = files.get(file);
    if (!entry) return void res.writeHead(404, { 'x-error-code': 'EntryNotFound', 'x-repo-commit': repo.commit }).end('Entry not found');
    if (isLfs(file)) {
      return void res
        .writeHead(302, { location: `/cdn/${entry.sha256}`, 'x-repo-commit': repo.commit, 'x-linked-etag': `"${entry.sha256}"`, 'x-linked-size': entry.real.byteLength })
        .end();
    }
    const headers = { etag: `"${entry.gitSha}"`, 'x-repo-commit': repo.commit };
    const cut = repo.cutAfter?.[file];
    if (cut !== undefined && req.headers.range === undefined) {
      res.writeHead(200, { ...headers, 'content-length': entry.real.byteLength });
      res.write(entry.real.subarray(0, cut), () => res.destroy());
      return;
    }
    sendBytes(req, res, entry.served, entry.real.byteLength, headers);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => res.writeHead(500).end(String(err)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { endpoint: `http://127.0.0.1:${port}`, log };
}

/** The bytes, or for `Range: bytes=a-b` that slice as a 206 whose Content-Range states `size`. */
function sendBytes(req: IncomingMessage, res: ServerResponse, body: Uint8Array, size: number, headers: Record<string, string>): void {
  const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (range) {
    const start = Number(range[1]);
    const end = Math.min(Number(range[2]), size - 1);
    const part = body.subarray(start, end + 1);
    return void res.writeHead(206, { ...headers, 'content-length': part.byteLength, 'content-range': `bytes ${start}-${end}/${size}` }).end(part);
  }
  res.writeHead(200, { ...headers, 'content-length': body.byteLength }).end(body);
}
