// A trainable copy of a Gemma norm (modules_to_save) computes as the original does: (1 + w) travels with the copy.
import { test } from 'node:test';
import { getPeftModel } from '../../src/peft/index.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import { assertClose, loadBase, refBatch } from './helpers.js';

test('modules_to_save on Gemma 2 norms leaves the logits as the base computes them', async () => {
  const base = await loadBase('tiny-gemma2');
  const { inputIds } = await refBatch('tiny-gemma2');
  const expected = await noGrad(() => base.run({ inputIds })).logits.data();
  const peft = getPeftModel(base, { r: 4, loraAlpha: 8, targetModules: ['q_proj'], modulesToSave: ['norm', 'post_feedforward_layernorm'] });
  const actual = await noGrad(() => peft.run({ inputIds })).logits.data();
  assertClose(actual, expected, 'logits with copied norms', 1e-6);
});
