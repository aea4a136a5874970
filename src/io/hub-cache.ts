import { getRepoFolderName } from '@huggingface/hub';
import { copyFile, mkdir, readFile, rename, rm, stat, symlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { writeAll, writeFileAtomically } from './atomic-write.js';
import { folderFiles } from './folder-files.js';

/** A repo on the Hub: models and datasets live in separate namespaces (and cache folders). */
export interface HubRepo {
  type: 'model' | 'dataset';
  /** org/name */
  name: string;
}

/**
 * The Hugging Face cache, laid out as huggingface_hub lays it out so both share downloads:
 *   <cache>/<type>s--<org>--<name>/blobs/<etag>                 file contents, named by ETag (sha256 for LFS files)
 *   <cache>/<type>s--<org>--<name>/refs/<revision>               the commit hash a branch or tag pointed to
 *   <cache>/<type>s--<org>--<name>/snapshots/<commit>/<file>     relative symlinks into blobs/
 *   <cache>/<type>s--<org>--<name>/.no_exist/<commit>/<file>     empty markers for files the Hub does not have
 */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return join(env.HF_HOME, 'hub');
  const xdg = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(xdg, 'huggingface', 'hub');
}

export class RepoCache {
  readonly root: string;

  constructor(cacheDir: string, repo: HubRepo) {
    this.root = join(cacheDir, getRepoFolderName(repo));
  }

  snapshotDir(commit: string): string {
    return join(this.root, 'snapshots', commit);
  }

  blobPath(etag: string): string {
    return join(this.root, 'blobs', etag);
  }

  /** The commit a revision resolves to: the revision itself when it is a commit hash, else what refs/ recorded. */
  async commitFor(revision: string): Promise<string | null> {
    if (isCommitHash(revision)) return revision;
    try {
      return (await readFile(join(this.root, 'refs', revision), 'utf8')).trim() || null;
    } catch {
      return null;
    }
  }

  async writeRef(revision: string, commit: string): Promise<void> {
    if (revision === commit) return;
    await writeFileAtomically(join(this.root, 'refs', revision), (h) => writeAll(h, new TextEncoder().encode(commit)));
  }

  async hasFile(commit: string, file: string): Promise<boolean> {
    return isFile(join(this.snapshotDir(commit), file));
  }

  /** Every file of a cached snapshot, as repo paths ("data/train-00000-of-00001.parquet"), sorted. */
  async snapshotFiles(commit: string): Promise<string[]> {
    return folderFiles(this.snapshotDir(commit));
  }

  async hasBlob(etag: string): Promise<boolean> {
    return isFile(this.blobPath(etag));
  }

  async isKnownMissing(commit: string, file: string): Promise<boolean> {
    return isFile(join(this.root, '.no_exist', commit, file));
  }

  async markMissing(commit: string, file: string): Promise<void> {
    await writeFileAtomically(join(this.root, '.no_exist', commit, file), async () => {});
  }

  /** Points snapshots/<commit>/<file> at blobs/<etag> with a relative symlink, or a copy where symlinks are not allowed. */
  async link(commit: string, file: string, etag: string): Promise<void> {
    const pointer = join(this.snapshotDir(commit), file);
    const blob = this.blobPath(etag);
    await mkdir(dirname(pointer), { recursive: true });
    const temp = `${pointer}.${process.pid}.link.tmp`;
    await rm(temp, { force: true });
    try {
      await symlink(relative(dirname(pointer), blob), temp);
    } catch {
      await copyFile(blob, temp);
    }
    await rename(temp, pointer);
  }
}

export function isCommitHash(revision: string): boolean {
  return /^[0-9a-f]{40}$/.test(revision);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
