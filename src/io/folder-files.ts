import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { pathKind } from './path-kind.js';

/** Every file below `dir` (symlinks followed), as sorted "/"-separated paths relative to it; [] when `dir` does not exist. */
export async function folderFiles(dir: string): Promise<string[]> {
  if ((await pathKind(dir)) !== 'dir') return [];
  const files: string[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    if ((await pathKind(path)) === 'file') files.push(relative(dir, path).split('\\').join('/'));
  }
  return files.sort();
}
