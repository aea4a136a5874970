import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LrScheduler, lrMultiplier, resolveLrSchedule, warmupStepsFor, type LrSchedulerKwargs, type LrSchedulerType } from '../../src/optim/index.js';
import { checkTrainingArguments, DEFAULT_TRAINING_ARGUMENTS } from '../../src/train/training-args.js';

// Expected values: transformers' optimization.py lambdas (_get_cosine_schedule_with_warmup_lr_lambda with min_lr_rate,
// _get_polynomial_decay_schedule_with_warmup_lr_lambda, _get_wsd_scheduler_lambda), copied verbatim into Python and evaluated.
const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${what}: ${a} != ${b}`);

function check(type: LrSchedulerType, lr: number, warmup: number, total: number, kwargs: LrSchedulerKwargs, steps: number[], expected: number[]): void {
  const o = resolveLrSchedule(type, lr, warmup, total, kwargs);
  steps.forEach((s, i) => close(lrMultiplier(s, o), expected[i]!, `${type} ${JSON.stringify(kwargs)} step ${s}`));
}

test('cosine_with_min_lr: min_lr (as min_lr / lr) and min_lr_rate, as get_cosine_with_min_lr_schedule_with_warmup', () => {
  const steps = [0, 3, 5, 10, 32, 55, 99, 100, 150];
  check('cosine_with_min_lr', 1e-4, 10, 100, { min_lr: 1e-5 }, steps, [0, 0.3, 0.5, 1, 0.873702910152393, 0.55, 0.10027412784140691, 0.1, 0.6281416799501185]);
  check('cosine_with_min_lr', 1e-4, 10, 100, { min_lr_rate: 0.2, num_cycles: 1.5 }, steps, [0, 0.3, 0.5, 1, 0.33234775745645684, 0.5999999999999999, 0.20219124185269066, 0.2, 0.4000000000000004]);
  assert.throws(() => resolveLrSchedule('cosine_with_min_lr', 1e-4, 0, 10, { min_lr: 1e-5, min_lr_rate: 0.1 }), /Only one of min_lr or min_lr_rate/);
  assert.throws(() => resolveLrSchedule('cosine_with_min_lr', 1e-4, 0, 10, {}), /needs min_lr or min_lr_rate/);
});

test('polynomial: power and lr_end (default 1e-7, power 1), lr_end / lr after the last step, as get_polynomial_decay_schedule_with_warmup', () => {
  const steps = [0, 3, 5, 20, 49, 50, 60];
  check('polynomial', 1e-3, 5, 50, { power: 2, lr_end: 1e-5 }, steps, [0, 0.6, 1, 0.45000000000000007, 0.010488888888888891, 0.01, 0.01]);
  check('polynomial', 2e-4, 0, 50, {}, steps, [1, 0.9400299999999999, 0.90005, 0.6002, 0.02049000000000002, 0.0004999999999999999, 0.0004999999999999999]);
  assert.throws(() => resolveLrSchedule('polynomial', 1e-5, 0, 10, { lr_end: 1e-4 }), /lr_end/);
});

test('warmup_stable_decay: stable = total - warmup - decay unless num_stable_steps is given; warmup/decay types; min_lr_ratio (get_wsd_schedule)', () => {
  check('warmup_stable_decay', 1e-3, 4, 40, { num_decay_steps: 10, min_lr_ratio: 0.1 }, [0, 2, 4, 20, 29, 30, 33, 39, 40, 45], [0.1, 0.55, 1, 1, 1, 1, 0.8145033635316129, 0.12202456766718092, 0.1, 0.1]);
  const steps = [0, 1, 3, 4, 8, 9, 12, 14, 20];
  check('warmup_stable_decay', 1e-3, 4, 100, { num_stable_steps: 5, num_decay_steps: 6, warmup_type: 'cosine', decay_type: '1-sqrt' }, steps, [0, 0.1464466094067262, 0.8535533905932737, 1, 1, 1, 0.2928932188134524, 0.0871290708247231, 0]);
  check('warmup_stable_decay', 1e-3, 4, 100, { num_stable_steps: 5, num_decay_steps: 6, warmup_type: '1-sqrt', decay_type: 'linear', min_lr_ratio: 0.05 }, steps, [0.05, 0.17727586640478332, 0.525, 1, 1, 1, 0.525, 0.20833333333333331, 0.05]);
  assert.throws(() => resolveLrSchedule('warmup_stable_decay', 1e-3, 0, 10, {}), /num_decay_steps/);
  assert.throws(() => resolveLrSchedule('warmup_stable_decay', 1e-3, 0, 10, { num_decay_steps: 2, decay_type: 'sqrt' as never }), /Unknown decay_type/);
  assert.throws(() => resolveLrSchedule('linear', 1e-3, 0, 10, { min_lr: 1 }), /not taken by the linear schedule/);
});

test('warmup_ratio: ceil(ratio * total steps) when warmup_steps is 0 (TrainingArguments.get_warmup_steps), checked in [0, 1]', () => {
  assert.equal(warmupStepsFor(100, 0, 0.07), 8); // 100 * 0.07 = 7.000000000000001 in float64, as in Python
  assert.equal(warmupStepsFor(47, 0, 0.1), 5);
  assert.equal(warmupStepsFor(47, 3, 0.1), 3);
  assert.equal(warmupStepsFor(47, 0), 0);
  assert.throws(() => warmupStepsFor(10, 0, 1.5), /warmup_ratio/);
  assert.throws(() => checkTrainingArguments({ ...DEFAULT_TRAINING_ARGUMENTS, outputDir: 'x', lrScheduler: 'cosine_with_min_lr' }), /min_lr/);
  const s = new LrScheduler(1e-4, resolveLrSchedule('cosine_with_min_lr', 1e-4, warmupStepsFor(100, 0, 0.1), 100, { min_lr: 1e-5 }));
  s.loadStateDict({ step_count: 100 });
  close(s.lr, 1e-5, 'lr at the last step');
});
