import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { folderEntries } from '../train/checkpoint-dir.js';
import { removeInterruptedWrites } from '../train/interrupted-writes.js';
import { UsageError } from './errors.js';

/** What a training run leaves in its folder; --overwrite removes exactly these. */
const RUN_FILES = ['training_args.json', 'trainer_state.json', 'metrics.jsonl', 'report.html', 'adapter_config.json', 'adapter_model.safetensors'];
const isRunEntry = (name: string) => RUN_FILES.includes(name) || name.startsWith('checkpoint-') || name.startsWith('.checkpoint-');

/** The run artifacts in `dir` (empty when the folder does not exist). */
export async function runArtifacts(dir: string): Promise<string[]> {
  return (await folderEntries(dir)).filter(isRunEntry).sort();
}

/** Removes every run artifact of `dir`. */
export async function clearRunFolder(dir: string): Promise<void> {
  for (const name of await runArtifacts(dir)) await rm(join(dir, name), { recursive: true, force: true });
}

/**
 * Removes what interrupted writes of an earlier run left, then refuses to train into a folder that holds another
 * run unless the user chose --overwrite (which clears it) or --resume.
 */
export async function prepareRunFolder(dir: string, mode: { overwrite: boolean; resume: boolean }): Promise<void> {
  await removeInterruptedWrites(dir);
  const found = await runArtifacts(dir);
  if (mode.resume) {
    if (!found.includes('training_args.json')) throw new UsageError(`${dir} holds no training run to resume (no training_args.json); start one without --resume.`);
    return;
  }
  if (found.length === 0) return;
  if (!mode.overwrite) {
    throw new UsageError(`${dir} already holds a training run (${found.slice(0, 3).join(', ')}${found.length > 3 ? ', ...' : ''}); pass --resume to continue it or --overwrite to replace it.`);
  }
  await clearRunFolder(dir);
}
