import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseWeightMap } from './checkpoint.js';
import { FormatError, HubError } from './errors.js';
import { hubCacheDir, RepoCache } from './hub-cache.js';
import { requestHubFile, saveBody, type HubRequest } from './hub-download.js';
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

const PARALLEL_SHARD_DOWNLOADS = 4;

/**
 * A local folder with the model's files: `idOrPath` itself when it is a folder, else the snapshot of the Hub repo
 * `idOrPath` in the Hugging Face cache. A snapshot that already holds every requested file is used without touching
 * the network; otherwise the files are downloaded (all at the commit the first one resolved to) and cached.
 * HF_HUB_OFFLINE=1 forbids the network.
 */
export async function resolvePretrained(idOrPath: string, opts: ResolvePretrainedOptions = {}): Promise<string> {
  const kind = await pathKind(idOrPath);
  if (kind === 'dir') return idOrPath;
  if (kind === 'file') throw new FormatError(idOrPath, `${idOrPath} is a file; pass the folder that holds config.json and the weights.`);
  if (!REPO_ID.test(idOrPath)) {
    throw new FormatError(idOrPath, `${idOrPath} is neither an existing folder nor a Hugging Face repo id of the form org/name; check the path.`);
  }
  const revision = opts.revision ?? 'main';
  const files = opts.files ?? DEFAULT_MODEL_FILES;
  const cache = new RepoCache(opts.cacheDir ?? hubCacheDir(), idOrPath);

  const cachedCommit = await cache.commitFor(revision);
  if (cachedCommit !== null) {
    try {
      await collectFiles(files, cachedSnapshot(cache, cachedCommit));
      return cache.snapshotDir(cachedCommit);
    } catch (err) {
      if (!(err instanceof CacheMiss) && !(err instanceof HubError)) throw err;
    }
  }
  if (isOffline()) {
    throw new HubError(idOrPath, null, `${idOrPath} (revision ${revision}) is not fully in the cache at ${cache.root} and HF_HUB_OFFLINE is set; run once with network access, or unset HF_HUB_OFFLINE.`);
  }
  const endpoint = (opts.endpoint ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
  const token = opts.token ?? (process.env.HF_TOKEN || undefined);
  const remote = remoteSnapshot(cache, { endpoint, repoId: idOrPath, revision, token });
  await collectFiles(files, remote);
  const commit = remote.commit();
  await cache.writeRef(revision, commit);
  return cache.snapshotDir(commit);
}

/** One way of making files appear in a snapshot folder: from the cache alone, or from the Hub. */
interface Snapshot {
  label: string;
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
    async fetch(file) {
      if (await cache.hasFile(commit, file)) return true;
      if (await cache.isKnownMissing(commit, file)) return false;
      throw new CacheMiss(file);
    },
  };
}

function remoteSnapshot(cache: RepoCache, req: HubRequest): Snapshot & { commit(): string } {
  let pinned: string | null = null;
  const commit = (): string => {
    if (pinned === null) throw new Error('No file was downloaded yet, so the commit is unknown.');
    return pinned;
  };
  return {
    label: `${req.repoId} (revision ${req.revision})`,
    commit,
    dir: () => cache.snapshotDir(commit()),
    async fetch(file) {
      const head = await requestHubFile({ ...req, revision: pinned ?? req.revision }, file);
      if ('missing' in head) {
        pinned ??= head.commit;
        if (pinned !== null) await cache.markMissing(pinned, file);
        return false;
      }
      pinned ??= head.commit;
      if (await cache.hasBlob(head.etag)) await head.response.body?.cancel();
      else await saveBody(head, cache.blobPath(head.etag));
      await cache.link(pinned, file, head.etag);
      return true;
    },
  };
}

/** Brings every file into the snapshot, with the fallback from `X.safetensors` to its sharded index and shards. */
async function collectFiles(files: readonly string[], snapshot: Snapshot): Promise<void> {
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
  const shards = [...new Set(parseWeightMap(indexPath, await readFile(indexPath, 'utf8')).values())];
  const prefix = indexFile.includes('/') ? indexFile.slice(0, indexFile.lastIndexOf('/') + 1) : '';
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < shards.length && !failed) {
      const shard = `${prefix}${shards[next++]!}`;
      const present = await snapshot.fetch(shard).catch((err: unknown) => {
        failed = true;
        throw err;
      });
      if (!present) {
        failed = true;
        throw new HubError(shard, 404, `${snapshot.label} lists ${shard} in ${indexFile} but does not have it; the repo is incomplete, ask its owner or pick another revision.`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_SHARD_DOWNLOADS, shards.length) }, worker));
}

function isOffline(): boolean {
  return ['1', 'on', 'yes', 'true'].includes((process.env.HF_HUB_OFFLINE ?? '').toLowerCase());
}
