import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LrScheduler, lrMultiplier } from '../../src/optim/index.js';

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) <= 1e-12, `${a} != ${b}`);

test('constant keeps the base rate, warmup or not (get_constant_schedule)', () => {
  for (const step of [0, 3, 99]) assert.equal(lrMultiplier(step, { type: 'constant', warmupSteps: 10, totalSteps: 100 }), 1);
});

test('constant_with_warmup rises linearly from 0, then stays at 1', () => {
  const o = { type: 'constant_with_warmup', warmupSteps: 10, totalSteps: 100 } as const;
  assert.deepEqual([0, 5, 10, 50].map((s) => lrMultiplier(s, o)), [0, 0.5, 1, 1]);
});

test('linear warms up over warmup steps, then decays to 0 at the last step (get_linear_schedule_with_warmup)', () => {
  const o = { type: 'linear', warmupSteps: 10, totalSteps: 100 } as const;
  assert.deepEqual([0, 5, 10, 55, 100, 120].map((s) => lrMultiplier(s, o)), [0, 0.5, 1, 0.5, 0, 0]);
});

test('cosine follows half a cosine wave after warmup (get_cosine_schedule_with_warmup, num_cycles 0.5)', () => {
  const o = { type: 'cosine', warmupSteps: 10, totalSteps: 100 } as const;
  close(lrMultiplier(10, o), 1);
  close(lrMultiplier(32.5, o), 0.8535533905932737);
  close(lrMultiplier(55, o), 0.5);
  close(lrMultiplier(100, o), 0);
  close(lrMultiplier(3, o), 0.3);
});

test('the scheduler gives the rate of the next optimizer step and resumes from its state', () => {
  const s = new LrScheduler(1e-3, { type: 'linear', warmupSteps: 2, totalSteps: 6 });
  const seen: number[] = [];
  for (let i = 0; i < 6; i++) {
    seen.push(s.lr);
    s.step();
  }
  const expected = [0, 0.5e-3, 1e-3, 0.75e-3, 0.5e-3, 0.25e-3];
  seen.forEach((v, i) => close(v, expected[i]!));
  const resumed = new LrScheduler(1e-3, { type: 'linear', warmupSteps: 2, totalSteps: 6 });
  resumed.loadStateDict({ step_count: 3 });
  close(resumed.lr, 0.75e-3);
});
