// The package root (dist/src/index.js, what `import ... from 'loraforge'` gives) exports the training, optimizer,
// schedule, data and serving APIs; README.md's blocks (test/readme.test.ts) use them end to end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as root from '../src/index.js';
import type { AdamWOptions, DatasetOptions, LrScheduleOptions, ServerOptions, TrainerOptions, TrainingArguments } from '../src/index.js';

test('the root exports the Trainer, AdamW, schedules, dataset loading/tokenization and the server factory', () => {
  const functions = [
    'Trainer', 'peftDropoutControl', 'enableGradientCheckpointing', 'latestCheckpoint',
    'AdamW', 'clipGradNorm', 'LrScheduler', 'lrMultiplier', 'resolveLrSchedule', 'warmupStepsFor', 'loraplusParamGroups',
    'prepareDataset', 'describeSummary', 'tokenizeExample', 'readJsonl', 'detectFormat', 'normalizeRecord', 'packExamples', 'collate', 'DataError',
    'createServer',
  ] as const;
  for (const name of functions) assert.equal(typeof root[name], 'function', name);
  assert.deepEqual(root.DATA_FORMATS, ['text', 'prompt_completion', 'messages', 'sharegpt', 'alpaca']);
  assert.ok(root.LR_SCHEDULER_TYPES.includes('cosine'));
  assert.equal(root.IGNORE_INDEX, -100);
  assert.equal(root.SERVER_DEFAULTS.port, 8000);
  assert.equal(root.DEFAULT_TRAINING_ARGUMENTS.lrScheduler, 'linear');
});

test('AdamW (paged option included), LrScheduler and lrMultiplier work from the root', async () => {
  const p = root.ops.tensor([1, 2]).requiresGrad_();
  const options: AdamWOptions = { lr: 0.1, weightDecay: 0, paged: true };
  const opt = new root.AdamW(new Map([['w', p]]), options); // paged: ignored on the CPU
  p.grad = root.ops.tensor([1, -1]).keep();
  opt.step();
  const [a, b] = await p.data();
  assert.ok(Math.abs(a! - 0.9) < 1e-6 && Math.abs(b! - 2.1) < 1e-6, `${a}, ${b}`);
  const schedule: LrScheduleOptions = { type: 'linear', warmupSteps: 0, totalSteps: 4 };
  assert.equal(root.lrMultiplier(2, schedule), 0.5);
  const s = new root.LrScheduler(1, schedule);
  s.step();
  assert.equal(s.lr, 0.75);
});

test('the public option types accept their documented shapes', () => {
  const args: TrainingArguments = { ...root.DEFAULT_TRAINING_ARGUMENTS, outputDir: 'out' };
  const data: DatasetOptions = { path: 'train.jsonl', seqLen: 64, seed: 0 };
  const serve: ServerOptions = { modelDir: 'model', port: 0 };
  const trainer: Pick<TrainerOptions, 'args' | 'padId'> = { args, padId: 0 };
  assert.equal(trainer.args.outputDir, 'out');
  assert.equal(data.seqLen + (serve.port ?? 1), 64);
});
