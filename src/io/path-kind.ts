import { stat } from 'node:fs/promises';

/** What is at `path`, following symlinks; errors other than "does not exist" (permissions, I/O) propagate. */
export async function pathKind(path: string): Promise<'file' | 'dir' | 'missing'> {
  try {
    return (await stat(path)).isDirectory() ? 'dir' : 'file';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'missing';
    throw err;
  }
}
