// LoRA+ parameter groups as PEFT's create_loraplus_optimizer builds them (peft/optimizers/loraplus.py); cases follow
// PEFT's tests/test_loraplus.py (test_lora_plus_helper_sucess, test_lora_plus_optimizer_sucess).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/index.js';
import { tensor } from '../../src/ops/index.js';
import { AdamW, loraplusParamGroups } from '../../src/optim/index.js';
import { getPeftModel } from '../../src/peft/index.js';
import { Trainer } from '../../src/train/trainer.js';
import { DEFAULT_TRAINING_ARGUMENTS } from '../../src/train/training-args.js';
import { loadBase, tempDir } from './helpers.js';

test('groups: lora_A in groupA at lr, lora_B (and 1-D tensors) at lr * ratio, biases without decay, embeddings at loraplus_lr_embedding', () => {
  const p = (shape: number[]) => tensor(new Array(shape.reduce((a, b) => a * b, 1)).fill(0), shape).requiresGrad_();
  const params = new Map([
    ['m.q_proj.lora_A.weight', p([2, 4])],
    ['m.q_proj.lora_B.weight', p([4, 2])],
    ['m.q_proj.lora_B.bias', p([4])],
    ['m.q_proj.lora_magnitude_vector', p([4])],
    ['m.embed_tokens.lora_embedding_A', p([2, 8])],
    ['m.embed_tokens.lora_embedding_B', p([8, 2])],
  ]);
  const groups = loraplusParamGroups(params, { lr: 1e-4, loraplusLrRatio: 16, loraplusWeightDecay: 0.1 });
  assert.deepEqual(
    groups.map((g) => [g.names, g.lr, g.weightDecay]),
    [
      [['m.q_proj.lora_A.weight'], 1e-4, 0.1],
      [['m.embed_tokens.lora_embedding_A', 'm.embed_tokens.lora_embedding_B'], 1e-6, 0.1],
      [['m.q_proj.lora_B.weight', 'm.q_proj.lora_magnitude_vector'], 1e-4 * 16, 0.1],
      [['m.q_proj.lora_B.bias'], 1e-4 * 16, 0],
    ],
  );
  assert.throws(() => loraplusParamGroups(params, { lr: 1e-4, loraplusLrRatio: 0 }), /loraplus_lr_ratio must be a positive number/);
});

test('AdamW steps each group at its lr, scaled as the schedule scales lr', async () => {
  const a = tensor([1]).requiresGrad_();
  const b = tensor([1]).requiresGrad_();
  const opt = new AdamW(new Map([['lora_A', a], ['lora_B', b]]), { lr: 0.1, weightDecay: 0, groups: [{ names: ['lora_B'], lr: 0.4, weightDecay: 0 }] });
  opt.lr = 0.05; // the schedule halves the rate
  assert.equal(opt.lrOf('lora_A'), 0.05);
  assert.equal(opt.lrOf('lora_B'), 0.2);
  a.grad = tensor([1]).keep();
  b.grad = tensor([1]).keep();
  opt.step();
  // First Adam step moves by lr * sign(g).
  assert.ok(Math.abs((await a.data())[0]! - 0.95) < 1e-6);
  assert.ok(Math.abs((await b.data())[0]! - 0.8) < 1e-6);
});

test('the Trainer with loraplusLrRatio gives the B matrices lr * ratio', async () => {
  const peft = getPeftModel(await loadBase('tiny-llama'), { targetModules: ['q_proj'] });
  const trainer = new Trainer({
    model: peft,
    args: { ...DEFAULT_TRAINING_ARGUMENTS, outputDir: await tempDir(), lr: 2e-4, loraplusLrRatio: 8 },
    train: [{ inputIds: [1, 2, 3], labels: [1, 2, 3] }],
    padId: 0,
  });
  const names = [...peft.trainableParameters().keys()];
  const b = names.find((n) => n.includes('lora_B'))!;
  const a = names.find((n) => n.includes('lora_A'))!;
  assert.equal(trainer.optimizer.lrOf(a), 2e-4);
  assert.equal(trainer.optimizer.lrOf(b), 2e-4 * 8);
});
