import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { modelWithValue } from '../../scripts/make-malformed-data.js';
import { cli, MODEL, oneSentence, smallDataset, tempDir } from './helpers.js';

test('NaN weights: train refuses the checkpoint at load with one sentence, exit 1, and leaves no output folder', async () => {
  const dir = await tempDir();
  const out = join(dir, 'run');
  const model = join(dir, 'nan-model');
  await modelWithValue(MODEL, model, 'model.norm.weight', NaN);
  const r = cli(['train', '--model', model, '--data', await smallDataset(dir), '--output', out, '--max-steps', '2', '--batch-size', '2']);
  assert.equal(r.code, 1);
  assert.equal(
    oneSentence(r),
    `loraforge: ${join(model, 'model.safetensors')}: tensor "model.norm.weight" holds NaN at element 0; the weights are corrupt, so save or download them again.`,
  );
  assert.equal(existsSync(out), false);
});
