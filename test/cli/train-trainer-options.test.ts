// The Trainer flags of `loraforge train` (schedules, --optim, strategies, best model, early stopping, TensorBoard) end to end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cli, MODEL, oneSentence, smallDataset, tempDir } from './helpers.js';

test('train with per-epoch evaluation and saving, the best adapter at the end, paged AdamW, WSD and TensorBoard', async () => {
  const dir = await tempDir();
  const data = await smallDataset(dir);
  const out = join(dir, 'run');
  const r = cli(['train', '--model', MODEL, '--data', data, '--output', out, '--epochs', '2', '--batch-size', '3', '--validation-split', '0.25', '--r', '4', '--target-modules', 'q_proj,v_proj',
    '--samples', '0', '--eval-strategy', 'epoch', '--save-strategy', 'epoch', '--load-best-model-at-end', '--early-stopping-patience', '3', '--optim', 'paged_adamw_32bit',
    '--lr-scheduler', 'warmup_stable_decay', '--lr-scheduler-kwargs', '{"num_decay_steps": 2, "decay_type": "linear"}', '--warmup-ratio', '0.2', '--report-to', 'tensorboard']);
  assert.equal(r.code, 0, r.stderr);
  const args = JSON.parse(await readFile(join(out, 'training_args.json'), 'utf8'));
  assert.deepEqual([args.optim, args.eval_strategy, args.save_strategy, args.load_best_model_at_end, args.metric_for_best_model, args.warmup_ratio, args.lr_scheduler_kwargs],
    ['paged_adamw_32bit', 'epoch', 'epoch', true, 'loss', 0.2, { num_decay_steps: 2, decay_type: 'linear' }]);
  const state = JSON.parse(await readFile(join(out, 'trainer_state.json'), 'utf8'));
  assert.match(state.best_model_checkpoint, /checkpoint-\d+$/);
  assert.equal(typeof state.best_metric, 'number');
  assert.deepEqual(readdirSync(out).filter((e) => e.startsWith('checkpoint-')).sort(), ['checkpoint-3', 'checkpoint-6']);
  const runs = readdirSync(join(out, 'runs'));
  assert.equal(runs.length, 1);
  assert.match(readdirSync(join(out, 'runs', runs[0]!))[0]!, /^events\.out\.tfevents\./);
});

test('inconsistent Trainer flags are refused in one sentence', async () => {
  const dir = await tempDir();
  const data = await smallDataset(dir);
  const base = ['train', '--model', MODEL, '--data', data, '--max-steps', '1', '--r', '4', '--target-modules', 'q_proj'];
  assert.match(oneSentence(cli([...base, '--output', join(dir, 'a'), '--load-best-model-at-end'])), /load_best_model_at_end needs an evaluation strategy/);
  assert.match(oneSentence(cli([...base, '--output', join(dir, 'b'), '--lr-scheduler', 'cosine_with_min_lr'])), /cosine_with_min_lr needs min_lr or min_lr_rate/);
  assert.match(oneSentence(cli([...base, '--output', join(dir, 'c'), '--optim', 'sgd'])), /--optim must be one of adamw_torch, adamw_torch_fused, paged_adamw_32bit/);
});
