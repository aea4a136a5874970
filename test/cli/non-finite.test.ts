import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { modelWithValue } from '../../scripts/make-malformed-data.js';
import { cli, MODEL, oneSentence, smallDataset, tempDir } from './helpers.js';

test('NaN weights: train stops at step 1 with one sentence, exit 1, and leaves no output folder', async () => {
  const dir = await tempDir();
  const out = join(dir, 'run');
  const model = join(dir, 'nan-model');
  await modelWithValue(MODEL, model, 'model.norm.weight', NaN);
  const r = cli(['train', '--model', model, '--data', await smallDataset(dir), '--output', out, '--max-steps', '2', '--batch-size', '2']);
  assert.equal(r.code, 1);
  assert.equal(
    oneSentence(r),
    "loraforge: Training stopped at step 1: the loss is NaN, so this step was not applied and nothing of it was saved; lower the learning rate, check the data and the model's weights for extreme or NaN values.",
  );
  assert.equal(existsSync(out), false);
});
