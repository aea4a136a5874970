import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { folderEntries } from './checkpoint-dir.js';

/**
 * The temporary names of interrupted writes: src/io/atomic-write's `.<name>.<pid>.<12 hex>.tmp`, companion files'
 * and checkpoint folders' `.<name>.<pid>.tmp`. The pid is the writer's.
 */
const TEMPORARY = /^\..+\.(\d+)(?:\.[0-9a-f]{12})?\.tmp$/;

/**
 * Removes what writes into `dir` left when their process died (kill -9, power loss): temporary files and folders
 * whose writer is no longer running. A live writer's (another loraforge process, or this one) are left alone.
 */
export async function removeInterruptedWrites(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await folderEntries(dir)) {
    const pid = TEMPORARY.exec(name)?.[1];
    if (pid === undefined || isRunning(Number(pid))) continue;
    await rm(join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

function isRunning(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
