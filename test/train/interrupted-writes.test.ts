import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeInterruptedWrites } from '../../src/train/interrupted-writes.js';
import { tempDir } from './helpers.js';

test('temporary files and folders of dead writers are removed; a live writer\'s and other files stay', async () => {
  const dir = await tempDir();
  const dead = spawnSync(process.execPath, ['-e', '']).pid!;
  const live = process.ppid;
  const names = {
    deadFile: `.adapter_model.safetensors.${dead}.0123456789ab.tmp`,
    deadFolder: `.checkpoint-3.${dead}.tmp`,
    deadCompanion: `.tokenizer.json.${dead}.tmp`,
    liveFile: `.trainer_state.json.${live}.0123456789ab.tmp`,
    own: `.metrics.json.${process.pid}.0123456789ab.tmp`,
    user: 'notes.tmp',
  };
  for (const [key, name] of Object.entries(names)) {
    if (key === 'deadFolder') await mkdir(join(dir, name));
    else await writeFile(join(dir, name), 'x');
  }
  const removed = await removeInterruptedWrites(dir);
  assert.deepEqual(removed.sort(), [names.deadFile, names.deadFolder, names.deadCompanion].sort());
  assert.deepEqual(readdirSync(dir).sort(), [names.liveFile, names.own, names.user].sort());
});
