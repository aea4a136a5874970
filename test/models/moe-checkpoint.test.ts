import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AutoModelForCausalLM } from '../../src/index.js';
import { fixturePath } from '../helpers/fixtures.js';
import { editedFolder } from './edited-checkpoint.js';

test('a checkpoint missing one expert tensor is refused before loading, naming the tensor', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'moe-missing-'));
  try {
    const missing = 'model.layers.1.block_sparse_moe.experts.3.w2.weight';
    await editedFolder(fixturePath('tiny-mixtral'), join(dir, 'm'), { tensors: (t) => t.delete(missing) });
    await assert.rejects(AutoModelForCausalLM.fromPretrained(join(dir, 'm')), {
      message: `${join(dir, 'm', 'model.safetensors')} has no tensor "${missing}", which ${join(dir, 'm', 'config.json')} implies; the weights do not belong to this config.json or the file is incomplete.`,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
