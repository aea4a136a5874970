import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAll, writeFileAtomically } from '../io/atomic-write.js';

export const CHECKPOINT_PREFIX = 'checkpoint-';
const TEMP_PREFIX = `.${CHECKPOINT_PREFIX}`;

/**
 * Writes `<outputDir>/checkpoint-<step>` all at once: `fill` writes into a hidden temporary folder, which is
 * renamed into place only when complete. A crash or kill before the rename leaves the temporary folder (removed
 * at the next start by removeInterruptedWrites) and every earlier checkpoint intact; a checkpoint-N folder is therefore always complete.
 * `beforeRename` runs between the two (tests use it to kill the process there).
 */
export async function writeCheckpointDir(outputDir: string, step: number, fill: (dir: string) => Promise<void>, beforeRename?: () => Promise<void> | void): Promise<string> {
  const final = join(outputDir, `${CHECKPOINT_PREFIX}${step}`);
  const temp = join(outputDir, `${TEMP_PREFIX}${step}.${process.pid}.tmp`);
  await rm(temp, { recursive: true, force: true });
  await mkdir(temp, { recursive: true });
  try {
    await fill(temp);
    await beforeRename?.();
    // A folder of the same step (saved again after a resume) is replaced; rename cannot overwrite a non-empty folder.
    await rm(final, { recursive: true, force: true });
    await rename(temp, final);
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    throw err;
  }
  return final;
}

/** The names in `dir`; none when it does not exist or is not a folder. */
export async function folderEntries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/** Steps of the complete checkpoints in `outputDir`, ascending. */
export async function checkpointSteps(outputDir: string): Promise<number[]> {
  return (await folderEntries(outputDir))
    .map((n) => (n.startsWith(CHECKPOINT_PREFIX) ? Number(n.slice(CHECKPOINT_PREFIX.length)) : NaN))
    .filter((s) => Number.isInteger(s) && s >= 0)
    .sort((a, b) => a - b);
}

export async function latestCheckpoint(outputDir: string): Promise<string | null> {
  const steps = await checkpointSteps(outputDir);
  return steps.length ? join(outputDir, `${CHECKPOINT_PREFIX}${steps[steps.length - 1]}`) : null;
}

/**
 * Removes the oldest checkpoints so that at most `keep` remain (transformers' save_total_limit). The checkpoint of
 * step `bestStep` is kept as transformers' _sorted_checkpoints keeps best_model_checkpoint (moved next to the
 * newest), and with `keep` 1 and a best checkpoint that is not the newest, two are kept.
 */
export async function pruneCheckpoints(outputDir: string, keep: number, bestStep: number | null = null): Promise<void> {
  if (keep <= 0) return;
  const steps = await checkpointSteps(outputDir);
  const bestIndex = bestStep === null ? -1 : steps.indexOf(bestStep);
  if (bestIndex >= 0) {
    for (let i = bestIndex; i < steps.length - 2; i++) [steps[i], steps[i + 1]] = [steps[i + 1]!, steps[i]!];
    if (keep === 1 && steps[steps.length - 1] !== bestStep) keep = 2;
  }
  for (const s of steps.slice(0, Math.max(0, steps.length - keep))) await rm(join(outputDir, `${CHECKPOINT_PREFIX}${s}`), { recursive: true, force: true });
}

/** JSON with two-space indent and a final newline, written atomically. */
export async function writeJsonFile(path: string, value: unknown): Promise<void> {
  const bytes = new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`);
  await writeFileAtomically(path, (h) => writeAll(h, bytes));
}
