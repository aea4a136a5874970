import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { editSafetensorsMetadata } from '../../scripts/make-malformed-data.js';
import { peftDropoutControl } from '../../src/train/peft-dropout.js';
import { Trainer } from '../../src/train/trainer.js';
import { freshPeft, reversalExamples, tempDir, testArgs } from './helpers.js';

const DAMAGED = 'the checkpoint is damaged or from another run, so resume from an earlier checkpoint or start again with --overwrite.';

/** A run folder with checkpoint-1 and checkpoint-2 of a 6-step run (10 examples: 2 steps per epoch). */
async function savedRun(): Promise<string> {
  const dir = await tempDir();
  const peft = await freshPeft();
  const stop = new AbortController();
  await new Trainer({ model: peft, args: testArgs(dir, { saveSteps: 1 }), train: await reversalExamples(10), padId: 0, dropout: peftDropoutControl(peft), callbacks: { onStep: (s) => s.step === 2 && stop.abort() } }).train({ signal: stop.signal });
  return dir;
}

const runDir = savedRun();

/** Resumes from checkpoint-1 after `damage` changed a copy of its file `name`; resolves to the error message. */
async function resumeError(name: string, damage: (text: string) => string | null): Promise<string> {
  const dir = await runDir;
  const path = join(dir, 'checkpoint-1', name);
  const original = await readFile(path);
  const changed = damage(original.toString('utf8'));
  await (changed === null ? rm(path) : writeFile(path, changed));
  try {
    const peft = await freshPeft();
    await new Trainer({ model: peft, args: testArgs(dir), train: await reversalExamples(10), padId: 0, dropout: peftDropoutControl(peft) }).train({ resumeFrom: join(dir, 'checkpoint-1') });
    return 'resumed';
  } catch (err) {
    assert.equal((err as Error).name, 'TrainingError', String(err));
    return (err as Error).message;
  } finally {
    await writeFile(path, original);
  }
}

const edit = (f: (j: Record<string, unknown>) => void) => (text: string) => {
  const j = JSON.parse(text) as Record<string, unknown>;
  f(j);
  return JSON.stringify(j);
};
const at = async (name: string) => join(await runDir, 'checkpoint-1', name);

test('trainer_state.json that is not JSON is one sentence naming it', async () => {
  const message = await resumeError('trainer_state.json', () => '{"global_step": ');
  assert.match(message, new RegExp(`^${(await at('trainer_state.json')).replace(/[.]/g, '\\.')} is not valid JSON \\(.+\\); ${DAMAGED.replace(/[.]/g, '\\.')}$`));
});

test('an RNG state of three words is refused, naming rng_state.json and its field', async () => {
  assert.equal(await resumeError('rng_state.json', edit((j) => (j['dropout'] = [1, 2, 3]))), `${await at('rng_state.json')}: "dropout" must be the dropout generator's four 32-bit words, not [1,2,3]; ${DAMAGED}`);
});

test('pending_losses that is not a list of numbers is refused instead of a TypeError', async () => {
  assert.equal(await resumeError('rng_state.json', edit((j) => (j['pending_losses'] = 'x'))), `${await at('rng_state.json')}: "pending_losses" must be a list of numbers, not "x"; ${DAMAGED}`);
});

test('scheduler.json holding a list is refused', async () => {
  assert.equal(await resumeError('scheduler.json', () => '[]'), `${await at('scheduler.json')} must hold a JSON object, not []; ${DAMAGED}`);
});

test('a negative scheduler step count is refused', async () => {
  assert.equal(await resumeError('scheduler.json', edit((j) => (j['step_count'] = -3))), `${await at('scheduler.json')}: "step_count" must be an integer >= 0, not -3; ${DAMAGED}`);
});

test('a scheduler step count other than the checkpoint step is refused', async () => {
  assert.equal(await resumeError('scheduler.json', edit((j) => (j['step_count'] = 4))), `${await at('scheduler.json')}: "step_count" is 4, but trainer_state.json's global_step is 1; ${DAMAGED}`);
});

test('a data position past the end of an epoch of this data is refused', async () => {
  const message = await resumeError('trainer_state.json', edit((j) => (j['data_position'] = { epoch: 0, batch_in_epoch: 4 })));
  assert.equal(message, `${await at('trainer_state.json')}: "data_position.batch_in_epoch" is 4, but an epoch of this data has 4 micro-batches; resume with the data and --batch-size it was trained with.`);
});

test('a missing scheduler.json is named', async () => {
  assert.equal(await resumeError('scheduler.json', () => null), `${await at('scheduler.json')} is missing; ${DAMAGED}`);
});

test('optimizer step counts that are not positive integers are refused, naming the file', async () => {
  const dir = await runDir;
  const path = join(dir, 'checkpoint-1', 'optimizer.safetensors');
  const original = await readFile(path);
  let name = '';
  await editSafetensorsMetadata(path, (m) => {
    name = Object.keys(JSON.parse(m['steps']!) as object)[0]!;
    m['steps'] = JSON.stringify({ [name]: 0 });
  });
  try {
    const peft = await freshPeft();
    await assert.rejects(new Trainer({ model: peft, args: testArgs(dir), train: await reversalExamples(10), padId: 0, dropout: peftDropoutControl(peft) }).train({ resumeFrom: join(dir, 'checkpoint-1') }), {
      message: `${path}: the step count of "${name}" is 0, not a positive integer; the checkpoint is damaged or from another adapter, so resume from an earlier checkpoint or start again with --overwrite.`,
    });
  } finally {
    await writeFile(path, original);
  }
});
