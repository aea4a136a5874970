import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { mulScalar } from '../../src/ops/index.js';
import { TrainingError } from '../../src/train/errors.js';
import { peftDropoutControl } from '../../src/train/peft-dropout.js';
import { Trainer } from '../../src/train/trainer.js';
import type { TrainableModel } from '../../src/train/trainable-model.js';
import { freshPeft, reversalExamples, tempDir, testArgs } from './helpers.js';

/** The adapter, with every loss from optimizer step `from` on multiplied by `factor` (NaN or Infinity). */
async function lossTurningAt(from: number, factor: number): Promise<{ model: TrainableModel; peft: Awaited<ReturnType<typeof freshPeft>> }> {
  const peft = await freshPeft();
  let runs = 0;
  const model: TrainableModel = {
    // testArgs accumulates two micro-batches per step.
    run: (input) => peft.run(input),
    runLoss: (input) => {
      const loss = peft.runLoss(input);
      runs += 1;
      return Math.ceil(runs / 2) >= from ? mulScalar(loss, factor) : loss;
    },
    trainableParameters: () => peft.trainableParameters(),
    savePretrained: (dir) => peft.savePretrained(dir),
  };
  return { model, peft };
}

test('a NaN loss stops training at that step, names the last checkpoint, and writes no adapter', async () => {
  const dir = await tempDir();
  const { model, peft } = await lossTurningAt(3, NaN);
  const trainer = new Trainer({ model, args: testArgs(dir, { saveSteps: 1 }), train: await reversalExamples(10), padId: 0, dropout: peftDropoutControl(peft) });
  await assert.rejects(trainer.train(), (err: unknown) => {
    assert.ok(err instanceof TrainingError);
    assert.equal(
      err.message,
      `Training stopped at step 3: the loss is NaN, so this step was not applied and nothing of it was saved; lower the learning rate, check the data and the model's weights for extreme or NaN values, or resume from ${join(dir, 'checkpoint-2')}.`,
    );
    return true;
  });
  assert.equal(trainer.state.globalStep, 2);
  assert.deepEqual(readdirSync(dir).sort(), ['checkpoint-1', 'checkpoint-2', 'metrics.jsonl', 'training_args.json']);
});

test('an infinite loss at the first step stops training without a checkpoint to name', async () => {
  const dir = await tempDir();
  const { model } = await lossTurningAt(1, Infinity);
  await assert.rejects(new Trainer({ model, args: testArgs(dir), train: await reversalExamples(10), padId: 0 }).train(), {
    name: 'TrainingError',
    message: "Training stopped at step 1: the loss is Infinity, so this step was not applied and nothing of it was saved; lower the learning rate, check the data and the model's weights for extreme or NaN values.",
  });
});
