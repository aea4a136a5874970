// Options whose value is a JSON object (--rank-pattern, --alpha-pattern, --chat-template-kwargs,
// --lr-scheduler-kwargs) take the mapping itself in a YAML or JSON config file, checked as the flag's JSON is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readConfigFile } from '../../src/cli/config-file.js';
import { normalizeConfig, resolveOptions } from '../../src/cli/options.js';
import { TRAIN_OPTIONS, toTrainCommandOptions } from '../../src/cli/train-options.js';
import { cli, oneSentence, tempDir } from './helpers.js';

async function optionsFromConfig(name: string, text: string) {
  const path = join(await tempDir(), name);
  await writeFile(path, text);
  const config = normalizeConfig(TRAIN_OPTIONS, await readConfigFile(path), path);
  return { path, parse: () => toTrainCommandOptions(resolveOptions(TRAIN_OPTIONS, new Map(), config, path), new Set(Object.keys(config))) };
}

test('a YAML config gives the four object options as mappings', async () => {
  const yaml = [
    'rank_pattern:',
    '  q_proj: 16',
    'alpha_pattern: {v_proj: 4.5}',
    'chat_template_kwargs:',
    '  enable_thinking: false',
    'lr_scheduler_kwargs:',
    '  min_lr: 1.0e-5',
    '',
  ].join('\n');
  const o = (await optionsFromConfig('train.yaml', yaml)).parse();
  assert.deepEqual([o.rankPattern, o.alphaPattern, o.chatTemplateKwargs, o.lrSchedulerKwargs], [{ q_proj: 16 }, { v_proj: 4.5 }, { enable_thinking: false }, { min_lr: 1e-5 }]);
});

test('a JSON config gives them as objects, and JSON text is still accepted', async () => {
  const o = (await optionsFromConfig('train.json', JSON.stringify({ rank_pattern: { 'model.layers.0.self_attn.q_proj': 4 }, alpha_pattern: '{"q_proj": 8}' }))).parse();
  assert.deepEqual([o.rankPattern, o.alphaPattern], [{ 'model.layers.0.self_attn.q_proj': 4 }, { q_proj: 8 }]);
});

test('a mapping is checked as the flag is: a fractional rank is refused in the same sentence', async () => {
  const { parse } = await optionsFromConfig('train.yaml', 'rank_pattern:\n  q_proj: 1.5\n');
  assert.throws(parse, (e: Error) => e.message === `--rank-pattern must be a JSON object of module pattern to a positive integer rank, such as '{"q_proj": 16}'; got {"q_proj":1.5}.`);
});

test('train: a list where a mapping belongs is refused naming the config file and field, exit code 2', async () => {
  const { path } = await optionsFromConfig('train.yaml', 'lr_scheduler_kwargs: [1, 2]\n');
  const r = cli(['train', '--config', path]);
  assert.equal(r.code, 2);
  assert.equal(oneSentence(r), `loraforge: ${path}: field "lr-scheduler-kwargs" must be a JSON object (in a config file, a mapping); got [1,2].`);
});
