import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { peftDropoutControl } from '../../src/train/peft-dropout.js';
import { Trainer } from '../../src/train/trainer.js';
import { freshPeft, reversalExamples, tempDir, testArgs } from './helpers.js';

const lossesOf = (history: readonly Record<string, number | null>[]) => history.filter((e) => typeof e['loss'] === 'number').map((e) => e['loss']);

test('a run stopped at step 3 and resumed reproduces the uninterrupted losses and final adapter bit for bit', async () => {
  const train = await reversalExamples(10);
  const evalSet = await reversalExamples(4);
  // 10 examples in micro-batches of 3 with 2 per step: 2 steps per epoch, so the stop lands mid-epoch 1 and resumes into epoch 2.
  const straightDir = await tempDir();
  const straightPeft = await freshPeft();
  const straight = await new Trainer({ model: straightPeft, args: testArgs(straightDir, { evalSteps: 2 }), train, eval: evalSet, padId: 0, dropout: peftDropoutControl(straightPeft) }).train();
  assert.equal(straight.state.globalStep, 6);

  const dir = await tempDir();
  const stop = new AbortController();
  const firstPeft = await freshPeft();
  const first = await new Trainer({
    model: firstPeft,
    args: testArgs(dir, { evalSteps: 2 }),
    train,
    eval: evalSet,
    padId: 0,
    dropout: peftDropoutControl(firstPeft),
    callbacks: { onStep: (s) => s.step === 3 && stop.abort() },
  }).train({ signal: stop.signal });
  assert.equal(first.interrupted, true);
  assert.equal(first.state.globalStep, 3);

  // A new process would build everything again: a fresh model and adapter, then the checkpoint's state.
  const resumedPeft = await freshPeft();
  const resumed = await new Trainer({ model: resumedPeft, args: testArgs(dir, { evalSteps: 2 }), train, eval: evalSet, padId: 0, dropout: peftDropoutControl(resumedPeft) }).train({
    resumeFrom: join(dir, 'checkpoint-3'),
  });
  assert.equal(resumed.state.globalStep, 6);
  assert.deepEqual(lossesOf(resumed.state.logHistory), lossesOf(straight.state.logHistory));
  const evals = (h: readonly Record<string, number | null>[]) => h.filter((e) => 'eval_loss' in e).map((e) => [e['step'], e['eval_loss']]);
  assert.deepEqual(evals(resumed.state.logHistory), evals(straight.state.logHistory));
  assert.deepEqual(await readFile(join(dir, 'adapter_model.safetensors')), await readFile(join(straightDir, 'adapter_model.safetensors')));
  const state = JSON.parse(await readFile(join(dir, 'trainer_state.json'), 'utf8'));
  assert.equal(state.global_step, 6);
  assert.equal(state.max_steps, 6);
  const metrics = (await readFile(join(dir, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(metrics, state.log_history);
});
