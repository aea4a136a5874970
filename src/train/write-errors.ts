import { TrainingError } from './errors.js';

/** errno codes of a write that the disk, not loraforge, refused, and what the user can do about each. */
const DISK_ERRORS: Readonly<Record<string, string>> = {
  ENOSPC: 'the disk is full; free space there or pass --output on another disk',
  EDQUOT: 'the disk quota is used up; free space there or pass --output on another disk',
  EROFS: 'the file system is read-only; pass --output on a writable disk',
  EACCES: 'permission was denied; pass --output in a folder you can write to',
  EPERM: 'permission was denied; pass --output in a folder you can write to',
};

/**
 * Runs `write`, turning a disk error into one sentence naming `path` (the file or folder being written): Node's own
 * message for a failed write on an open file ("ENOSPC: no space left on device, write") names no path.
 */
export async function writingTo<T>(path: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const fix = code === undefined ? undefined : DISK_ERRORS[code];
    if (fix === undefined) throw err;
    throw new TrainingError(`${path} could not be written (${code}): ${fix}.`);
  }
}
