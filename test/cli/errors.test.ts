import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cli, MODEL, oneSentence, smallDataset, tempDir, writeLines } from './helpers.js';

test('a missing data file: one sentence naming it, non-zero exit', async () => {
  const dir = await tempDir();
  const r = cli(['train', '--model', MODEL, '--data', join(dir, 'nope.jsonl'), '--output', join(dir, 'run')]);
  assert.equal(r.code, 1);
  assert.equal(oneSentence(r), `loraforge: ${join(dir, 'nope.jsonl')} does not exist; pass a JSONL or parquet file, a folder of them, or a Hub dataset id of the form org/name.`);
});

test('a malformed data file: the file and line are named', async () => {
  const dir = await tempDir();
  const data = await writeLines(join(dir, 'bad.jsonl'), [{ prompt: 'a', completion: 'b' }, '{"prompt": "c", ']);
  const r = cli(['train', '--model', MODEL, '--data', data, '--output', join(dir, 'run')]);
  assert.equal(r.code, 1);
  assert.match(oneSentence(r), new RegExp(`^loraforge: ${data}:2: the line is not valid JSON`));
});

test('an unknown config field is named, with the fields that exist', async () => {
  const dir = await tempDir();
  const config = join(dir, 'train.yaml');
  await writeFile(config, 'lr: 0.001\ncolour: red\n');
  const r = cli(['train', '--config', config]);
  assert.equal(r.code, 2);
  assert.match(oneSentence(r), new RegExp(`^loraforge: ${config}: unknown field "colour"; the fields are model, data, output, .*lora-alpha`));
});

test('an option of the wrong type names the option and what it accepts', () => {
  assert.equal(oneSentence(cli(['train', '--lr', 'fast'])), 'loraforge: --lr must be a number >= 0; got "fast".');
  assert.equal(oneSentence(cli(['train', '--batch-size', '2.5'])), 'loraforge: --batch-size must be an integer >= 1; got "2.5".');
  assert.equal(oneSentence(cli(['train', '--lr-scheduler', 'step'])), 'loraforge: --lr-scheduler must be one of constant, constant_with_warmup, linear, cosine, cosine_with_min_lr, polynomial, warmup_stable_decay; got "step".');
  assert.match(oneSentence(cli(['train', '--epochs'])), /^loraforge: Option --epochs needs a value/);
  assert.match(oneSentence(cli(['train', '--lora-rank', '8'])), /^loraforge: Unknown option --lora-rank; the options are/);
});

test('a config value of the wrong type names the config field', async () => {
  const dir = await tempDir();
  const config = join(dir, 'train.json');
  await writeFile(config, JSON.stringify({ epochs: 'three' }));
  assert.equal(oneSentence(cli(['train', '--config', config])), `loraforge: ${config}: field "epochs" must be a number >= 0; got "three".`);
});

test('an output folder that holds a run is refused without --overwrite or --resume', async () => {
  const dir = await tempDir();
  const out = join(dir, 'run');
  await mkdir(out);
  await writeFile(join(out, 'training_args.json'), '{}');
  const r = cli(['train', '--model', MODEL, '--data', await smallDataset(dir), '--output', out]);
  assert.equal(r.code, 2);
  assert.equal(oneSentence(r), `loraforge: ${out} already holds a training run (training_args.json); pass --resume to continue it or --overwrite to replace it.`);
});

test('LORAFORGE_DEBUG=1 shows the stack trace', () => {
  const r = cli(['train', '--lr', 'fast'], { LORAFORGE_DEBUG: '1' });
  assert.match(r.stderr, /UsageError: --lr must be a number[\s\S]*\n\s+at /);
});

test('an unknown command lists the commands', () => {
  assert.equal(oneSentence(cli(['fit'])), 'loraforge: Unknown command "fit"; the commands are train, generate, merge, inspect, quantize, serve.');
});
