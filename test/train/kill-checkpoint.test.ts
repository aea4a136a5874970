import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { latestCheckpoint } from '../../src/train/checkpoint-dir.js';
import { peftDropoutControl } from '../../src/train/peft-dropout.js';
import { Trainer } from '../../src/train/trainer.js';
import { freshPeft, reversalExamples, tempDir, testArgs } from './helpers.js';

test('a process killed while writing a checkpoint leaves the previous checkpoint complete and resumable', async () => {
  const dir = await tempDir();
  const child = spawnSync(process.execPath, [fileURLToPath(new URL('./checkpoint-child.js', import.meta.url)), dir], { encoding: 'utf8' });
  assert.equal(child.signal, 'SIGKILL', child.stderr);
  const entries = readdirSync(dir).sort();
  assert.ok(entries.includes('checkpoint-1'));
  assert.ok(!entries.includes('checkpoint-2'));
  assert.ok(entries.some((e) => /^\.checkpoint-2\.\d+\.tmp$/.test(e)), `the interrupted write's temporary folder is left: ${entries.join(', ')}`);
  assert.equal(await latestCheckpoint(dir), join(dir, 'checkpoint-1'));
  for (const f of ['adapter_model.safetensors', 'adapter_config.json', 'optimizer.safetensors', 'scheduler.json', 'rng_state.json', 'trainer_state.json']) {
    assert.ok(existsSync(join(dir, 'checkpoint-1', f)), f);
  }

  const peft = await freshPeft();
  const resumed = await new Trainer({ model: peft, args: testArgs(dir), train: await reversalExamples(10), padId: 0, dropout: peftDropoutControl(peft) }).train({ resumeFrom: join(dir, 'checkpoint-1') });
  assert.equal(resumed.state.globalStep, 6);
  assert.ok(!readdirSync(dir).some((e) => e.endsWith('.tmp')), 'temporary checkpoint folders are removed when training starts');
});
