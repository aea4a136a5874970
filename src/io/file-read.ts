import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { FormatError } from './errors.js';

/** Largest single pread; Node caps one read at 2 GiB - 1, so bigger tensors are read in pieces. */
const MAX_READ_BYTES = 1 << 30;

/** Opens a file for reading, turning "no such file" and "is a directory" into a FormatError that names the path. */
export async function openForReading(path: string, what: string): Promise<FileHandle> {
  try {
    const handle = await open(path, 'r');
    const stat = await handle.stat();
    if (!stat.isFile()) {
      await handle.close();
      throw new FormatError(path, `${path} is not a file; pass the path of a ${what}.`);
    }
    return handle;
  } catch (err) {
    if (err instanceof FormatError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new FormatError(path, `${path} does not exist; check the path of the ${what}.`);
    if (code === 'EISDIR') throw new FormatError(path, `${path} is a directory; pass the path of a ${what}.`);
    throw err;
  }
}

/** Fills `target` from `position`; a file shorter than that is reported as truncated. */
export async function readExactly(handle: FileHandle, path: string, target: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < target.byteLength) {
    const length = Math.min(target.byteLength - done, MAX_READ_BYTES);
    const { bytesRead } = await handle.read(target, done, length, position + done);
    if (bytesRead === 0) {
      throw new FormatError(path, `${path} ended after ${position + done} bytes while more were expected; the file was truncated, download or write it again.`);
    }
    done += bytesRead;
  }
}
