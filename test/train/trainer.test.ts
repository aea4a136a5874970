import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { enableGradientCheckpointing } from '../../src/train/gradient-checkpointing.js';
import { peftDropoutControl } from '../../src/train/peft-dropout.js';
import { writeReport } from '../../src/train/report.js';
import { Trainer } from '../../src/train/trainer.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertClose } from '../helpers/numeric.js';
import { freshPeft, reversalExamples, tempDir, testArgs } from './helpers.js';

async function adapterValues(peft: Awaited<ReturnType<typeof freshPeft>>): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [k, t] of peft.trainableParameters()) out.set(k, await t.data());
  return out;
}

test('gradient accumulation over micro-batches equals one batch of their union (token-weighted)', async () => {
  const train = await reversalExamples(4);
  const run = async (batchSize: number, gradAccum: number) => {
    const peft = await freshPeft({ loraDropout: 0 });
    const args = testArgs(await tempDir(), { maxSteps: 2, batchSize, gradAccum, shuffle: false, maxGradNorm: 0, lrScheduler: 'constant', warmupSteps: 0 });
    const result = await new Trainer({ model: peft, args, train, padId: 0 }).train();
    return { losses: result.state.logHistory.filter((e) => 'loss' in e).map((e) => e['loss'] as number), params: await adapterValues(peft) };
  };
  const whole = await run(4, 1);
  const split = await run(1, 4);
  assertClose(split.losses, whole.losses, 1e-6, 'losses');
  for (const [k, v] of whole.params) assertClose(split.params.get(k)!, v, 1e-6, k);
});

function countCheckpointNodes(root: Tensor): number {
  const seen = new Set<Tensor>();
  const stack = [root];
  let count = 0;
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t) || !t.gradFn) continue;
    seen.add(t);
    if (t.gradFn.name === 'checkpoint') count++;
    stack.push(...t.gradFn.inputs);
  }
  return count;
}

test('gradient checkpointing recomputes layers with the same dropout masks and gives the same adapter', async () => {
  const train = await reversalExamples(6);
  const run = async (checkpointing: boolean) => {
    const peft = await freshPeft({ loraDropout: 0.2 });
    const dropout = peftDropoutControl(peft);
    if (checkpointing) {
      enableGradientCheckpointing(peft.model, dropout.rng);
      assert.equal(countCheckpointNodes(peft.run({ inputIds: [train[0]!.inputIds], labels: [train[0]!.labels] }).loss!), 2, 'one checkpoint per decoder layer');
    }
    await new Trainer({ model: peft, args: testArgs(await tempDir(), { maxSteps: 3, gradientCheckpointing: checkpointing }), train, padId: 0, dropout }).train();
    return adapterValues(peft);
  };
  const plain = await run(false);
  const recomputed = await run(true);
  for (const [k, v] of plain) assert.deepEqual(recomputed.get(k), v, k);
});

test('the run folder holds the adapter, training_args.json and trainer_state.json in transformers\' names, and metrics', async () => {
  const dir = await tempDir();
  const peft = await freshPeft();
  await new Trainer({ model: peft, args: testArgs(dir, { evalSteps: 3, saveSteps: 2, saveTotalLimit: 1 }), train: await reversalExamples(8), eval: await reversalExamples(3), padId: 0, dropout: peftDropoutControl(peft) }).train();
  const args = JSON.parse(await readFile(join(dir, 'training_args.json'), 'utf8'));
  assert.equal(args.learning_rate, 1e-2);
  assert.equal(args.gradient_accumulation_steps, 2);
  assert.equal(args.per_device_train_batch_size, 3);
  assert.equal(args.lr_scheduler_type, 'linear');
  const state = JSON.parse(await readFile(join(dir, 'trainer_state.json'), 'utf8'));
  assert.equal(state.global_step, 6);
  const evals = state.log_history.filter((e: Record<string, number>) => 'eval_loss' in e).map((e: Record<string, number>) => e['step']);
  assert.deepEqual(evals, [3, 6]);
  const train = state.log_history.filter((e: Record<string, number>) => 'loss' in e);
  assert.deepEqual(Object.keys(train[0]).sort(), ['epoch', 'grad_norm', 'learning_rate', 'loss', 'step']);
  assert.equal(train[0].learning_rate, 0);
  assert.ok('train_loss' in state.log_history.at(-1));
  // Checkpoints at steps 2 and 4 (none at the last step: the final adapter is in the folder itself); save_total_limit 1 keeps the newest.
  const { readdirSync } = await import('node:fs');
  assert.deepEqual(readdirSync(dir).filter((e) => e.startsWith('checkpoint-')), ['checkpoint-4']);
  assert.ok(readdirSync(dir).includes('adapter_model.safetensors'));
  const report = await writeReport(dir, { title: 'test run', config: { lr: 0.01 }, notes: ['n'], logHistory: state.log_history, scores: [{ name: 'exact match', before: 0, after: 0.5 }], samples: [{ prompt: 'ab>', reference: 'ba', before: 'x', after: 'ba' }] });
  const html = await readFile(report, 'utf8');
  assert.match(html, /<svg[^>]*data-chart="loss"/);
  assert.match(html, /exact match<\/th><td>0<\/td><td>0\.500/);
});
