import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseWeightMap } from './checkpoint.js';
import { FormatError, HubError } from './errors.js';
import { hubCacheDir, RepoCache, type HubRepo } from './hub-cache.js';
import { HubClient, type RemoteFile } from './hub-client.js';
import { pathKind } from './path-kind.js';

export interface ResolvePretrainedOptions {
  /** Branch, tag or commit hash; default "main". */
  revision?: string;
  /** Access token; default $HF_TOKEN. Sent as a Bearer token to the Hub only. */
  token?: string;
  /** Default $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** Files to fetch; default DEFAULT_MODEL_FILES. */
  files?: string[];
  /** Default $HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
}

/** What a causal LM needs. For `X.safetensors` the Hub may instead hold `X.safetensors.index.json` and its shards. */
export const DEFAULT_MODEL_FILES: readonly string[] = [
  'config.json',
  'model.safetensors',
  'tokenizer.json',
  'tokenizer_config.json',
  'chat_template.jinja',
  'generation_config.json',
];

/** Files a repo may lack: a 404 for them is remembered and skipped (tokenizer.json too: weights-only repos exist). */
const OPTIONAL_FILES = new Set(['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja', 'generation_config.json', 'special_tokens_map.json']);

/** huggingface_hub's repo id rule, restricted to the org/name form. */
const REPO_ID = /^(?!.*(--|\.\.))[A-Za-z0-9][A-Za-z0-9._-]{0,95}\/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;

const PARALLEL_DOWNLOADS = 4;

/** True when `id` has the org/name form of a Hub repo id. */
export function isRepoId(id: string): boolean {
  return REPO_ID.test(id);
}

/**
 * A local folder with the model's files: `idOrPath` itself when it is a folder, else the snapshot of the Hub repo
 * `idOrPath` in the Hugging Face cache. A snapshot that already holds every requested file is used without touching
 * the network; otherwise the files are downloaded (all at the commit the revision points to) and cached.
 * HF_HUB_OFFLINE=1 forbids the network.
 */
export async function resolvePretrained(idOrPath: string, opts: ResolvePretrainedOptions = {}): Promise<string> {
  const kind = await pathKind(idOrPath);
  if (kind === 'dir') return idOrPath;
  if (kind === 'file') throw new FormatError(idOrPath, `${idOrPath} is a file; pass the folder that holds config.json and the weights.`);
  if (!isRepoId(idOrPath)) {
    throw new FormatError(idOrPath, `${idOrPath} is neither an existing folder nor a Hugging Face repo id of the form org/name; check the path.`);
  }
  const repo: HubRepo = { type: 'model', name: idOrPath };
  const revision = opts.revision ?? 'main';
  const files = opts.files ?? DEFAULT_MODEL_FILES;
  const cache = new RepoCache(opts.cacheDir ?? hubCacheDir(), repo);

  const cachedCommit = await cache.commitFor(revision);
  if (cachedCommit !== null) {
    try {
      await collectFiles(files, cachedSnapshot(cache, cachedCommit));
      return cache.snapshotDir(cachedCommit);
    } catch (err) {
      if (!(err instanceof CacheMiss) && !(err instanceof HubError)) throw err;
    }
  }
  refuseOffline(repo, revision, cache);
  const client = hubClient(repo, revision, opts);
  const commit = await client.commit();
  await collectFiles(files, remoteSnapshot(cache, client, commit));
  await cache.writeRef(revision, commit);
  return cache.snapshotDir(commit);
}

export interface HubDatasetSnapshot {
  /** The snapshot folder in the cache. */
  dir: string;
  /** The chosen files, as repo paths under `dir`. */
  files: string[];
}

/**
 * The files of the Hub dataset repo `id` that `choose` picks from the repo's file paths, downloaded into the Hugging
 * Face cache (datasets--org--name) at the commit the revision points to. Online, the file list always comes from the
 * Hub (one request), so a later commit is seen; with HF_HUB_OFFLINE=1, `choose` picks from the cached snapshot.
 */
export async function resolveHubDataset(id: string, choose: (paths: readonly string[]) => string[], opts: Omit<ResolvePretrainedOptions, 'files'> = {}): Promise<HubDatasetSnapshot> {
  const repo: HubRepo = { type: 'dataset', name: id };
  const revision = opts.revision ?? 'main';
  const cache = new RepoCache(opts.cacheDir ?? hubCacheDir(), repo);
  if (isOffline()) {
    const commit = await cache.commitFor(revision);
    const cached = commit === null ? [] : await cache.snapshotFiles(commit);
    if (commit === null || cached.length === 0) refuseOffline(repo, revision, cache);
    return { dir: cache.snapshotDir(commit!), files: choose(cached) };
  }
  const client = hubClient(repo, revision, opts);
  const commit = await client.commit();
  const listed = new Map((await client.listFiles(commit)).map((f) => [f.path, f]));
  const chosen = choose([...listed.keys()].sort());
  const snapshot = remoteSnapshot(cache, client, commit, listed);
  await forEachParallel(chosen, async (file) => {
    await snapshot.fetch(file);
  });
  await cache.writeRef(revision, commit);
  return { dir: cache.snapshotDir(commit), files: chosen };
}

function hubClient(repo: HubRepo, revision: string, opts: Omit<ResolvePretrainedOptions, 'files'>): HubClient {
  const endpoint = (opts.endpoint ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
  const token = opts.token ?? (process.env.HF_TOKEN || undefined);
  return new HubClient(repo, { endpoint, token }, revision);
}

function refuseOffline(repo: HubRepo, revision: string, cache: RepoCache): void {
  if (!isOffline()) return;
  const what = `${repo.type === 'dataset' ? 'dataset ' : ''}${repo.name} (revision ${revision})`;
  throw new HubError(repo.name, null, `${what} is not fully in the cache at ${cache.root} and HF_HUB_OFFLINE is set; run once with network access, or unset HF_HUB_OFFLINE.`);
}

/** One way of making files appear in a snapshot folder: from the cache alone, or from the Hub. */
interface Snapshot {
  label: string;
  /** Learns in one request which of `files` exist, for the `fetch` calls that follow. */
  describe(files: readonly string[]): Promise<void>;
  /** True once `file` is in the snapshot folder; false when the repo does not have it. */
  fetch(file: string): Promise<boolean>;
  dir(): string;
}

/** Thrown by the cache-only snapshot when it would need the network. */
class CacheMiss extends Error {}

function cachedSnapshot(cache: RepoCache, commit: string): Snapshot {
  return {
    label: `the cached snapshot ${commit}`,
    dir: () => cache.snapshotDir(commit),
    describe: async () => {},
    async fetch(file) {
      if (await cache.hasFile(commit, file)) return true;
      if (await cache.isKnownMissing(commit, file)) return false;
      throw new CacheMiss(file);
    },
  };
}

/** The snapshot of `commit` filled from the Hub; `known` holds files already described (null: the repo lacks it). */
function remoteSnapshot(cache: RepoCache, client: HubClient, commit: string, known = new Map<string, RemoteFile | null>()): Snapshot {
  const describe = async (files: readonly string[]): Promise<void> => {
    const todo = files.filter((f) => !known.has(f));
    const found = await client.describe(commit, todo);
    for (const f of todo) known.set(f, found.get(f) ?? null);
  };
  return {
    label: client.label,
    dir: () => cache.snapshotDir(commit),
    describe,
    async fetch(file) {
      if (await cache.hasFile(commit, file)) return true;
      if (!known.has(file)) await describe([file]);
      const remote = known.get(file) ?? null;
      if (remote === null) {
        await cache.markMissing(commit, file);
        return false;
      }
      if (!(await cache.hasBlob(remote.etag))) await client.download(commit, remote, cache.blobPath(remote.etag));
      await cache.link(commit, file, remote.etag);
      return true;
    },
  };
}

/** Brings every file into the snapshot, with the fallback from `X.safetensors` to its sharded index and shards. */
async function collectFiles(files: readonly string[], snapshot: Snapshot): Promise<void> {
  await snapshot.describe(files.flatMap((f) => (f.endsWith('.safetensors') ? [f, `${f}.index.json`] : [f])));
  for (const file of files) {
    if (await snapshot.fetch(file)) {
      if (file.endsWith('.safetensors.index.json')) await collectShards(file, snapshot);
      continue;
    }
    if (file.endsWith('.safetensors') && (await snapshot.fetch(`${file}.index.json`))) {
      await collectShards(`${file}.index.json`, snapshot);
      continue;
    }
    if (OPTIONAL_FILES.has(file)) continue;
    const alternatives = file.endsWith('.safetensors') ? ` nor ${file}.index.json (loraforge loads safetensors weights only)` : '';
    throw new HubError(file, 404, `${snapshot.label} has no ${file}${alternatives}; check the repo id, the revision and the file name.`);
  }
}

async function collectShards(indexFile: string, snapshot: Snapshot): Promise<void> {
  const indexPath = join(snapshot.dir(), indexFile);
  const prefix = indexFile.includes('/') ? indexFile.slice(0, indexFile.lastIndexOf('/') + 1) : '';
  const shards = [...new Set(parseWeightMap(indexPath, await readFile(indexPath, 'utf8')).values())].map((s) => `${prefix}${s}`);
  await snapshot.describe(shards);
  await forEachParallel(shards, async (shard) => {
    if (!(await snapshot.fetch(shard))) {
      throw new HubError(shard, 404, `${snapshot.label} lists ${shard} in ${indexFile} but does not have it; the repo is incomplete, ask its owner or pick another revision.`);
    }
  });
}

/** Runs `work` on every item, PARALLEL_DOWNLOADS at a time; after the first failure no new item starts. */
async function forEachParallel<T>(items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failed) {
      try {
        await work(items[next++]!);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_DOWNLOADS, items.length) }, worker));
}

function isOffline(): boolean {
  return ['1', 'on', 'yes', 'true'].includes((process.env.HF_HUB_OFFLINE ?? '').toLowerCase());
}
