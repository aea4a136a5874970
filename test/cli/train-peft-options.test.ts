// The PEFT flags of `loraforge train`: parsed and checked in src/cli/train-options.ts, combinations refused by
// src/peft/config.ts (PEFT's LoraConfig.__post_init__), each in one sentence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { resolveOptions, splitArgs } from '../../src/cli/options.js';
import { loraConfigOf } from '../../src/cli/train.js';
import { TRAIN_OPTIONS, toTrainCommandOptions } from '../../src/cli/train-options.js';
import { resolveLoraConfig } from '../../src/peft/index.js';
import { cli, MODEL, oneSentence, smallDataset, tempDir } from './helpers.js';

function parse(argv: string[]) {
  const { flags } = splitArgs(argv, TRAIN_OPTIONS);
  return toTrainCommandOptions(resolveOptions(TRAIN_OPTIONS, flags, null), new Set(flags.keys()));
}

test('the PEFT flags reach the LoRA config', () => {
  const o = parse([
    '--model', 'm', '--data', 'd', '--target-modules', 'q_proj,v_proj', '--exclude-modules', 'down_proj', '--layers-to-transform', '0,1',
    '--layers-pattern', 'layers', '--rank-pattern', '{"q_proj": 16}', '--alpha-pattern', '{"v_proj": 4.5}', '--init-lora-weights', 'pissa_niter_4',
    '--modules-to-save', 'lm_head', '--loraplus-lr-ratio', '16',
  ]);
  const c = loraConfigOf(o, false);
  assert.deepEqual(
    [c.excludeModules, c.layersToTransform, c.layersPattern, c.rankPattern, c.alphaPattern, c.initLoraWeights, c.modulesToSave, o.loraplusLrRatio],
    [['down_proj'], [0, 1], 'layers', { q_proj: 16 }, { v_proj: 4.5 }, 'pissa_niter_4', ['lm_head'], 16],
  );
  assert.equal(parse(['--init-lora-weights', 'false']).initLoraWeights, false);
  assert.equal(parse(['--init-lora-weights', 'gaussian']).initLoraWeights, 'gaussian');
  assert.equal(parse(['--exclude-modules', '.*\\.0\\..*']).excludeModules, '.*\\.0\\..*');
  assert.deepEqual(parse(['--trainable-token-indices', '1,2,3']).trainableTokenIndices, [1, 2, 3]);
  assert.deepEqual(parse(['--trainable-token-indices', '{"embed_tokens": [4]}']).trainableTokenIndices, { embed_tokens: [4] });
});

test('each malformed PEFT flag is refused in one sentence naming it', () => {
  const cases: [string[], RegExp][] = [
    [['--layers-to-transform', '0,a'], /^--layers-to-transform must be a comma list of non-negative layer indices/],
    [['--rank-pattern', '{"q_proj": 1.5}'], /^--rank-pattern must be a JSON object of module pattern to a positive integer rank/],
    [['--rank-pattern', 'q_proj=16'], /^--rank-pattern must be a JSON object/],
    [['--alpha-pattern', '[1]'], /^--alpha-pattern must be a JSON object/],
    [['--init-lora-weights', 'pissa_niter_'], /^--init-lora-weights must be true, false, gaussian, pissa, pissa_niter_N/],
    [['--init-lora-weights', 'eva'], /^--init-lora-weights must be/],
    [['--modules-to-save', 'lm head'], /^--modules-to-save must be a comma list of module names/],
    [['--trainable-token-indices', '1,-2'], /^--trainable-token-indices must be a comma list of token ids/],
    [['--loraplus-lr-ratio', '0'], /^--loraplus-lr-ratio must be a positive number/],
    [['--layers-pattern', ','], /^--layers-pattern must name the layer container/],
  ];
  for (const [argv, message] of cases) {
    assert.throws(() => parse(argv), (err: Error) => message.test(err.message) && !err.message.includes('\n'), argv.join(' '));
  }
});

test('flag combinations PEFT refuses are refused by the config check', () => {
  const config = (argv: string[]) => () => resolveLoraConfig(loraConfigOf(parse(argv), false));
  assert.throws(config(['--target-modules', '.*q_proj', '--layers-to-transform', '0']), /layersToTransform cannot be used when targetModules is a string/);
  assert.throws(config(['--target-modules', 'q_proj', '--layers-pattern', 'layers']), /layersPattern "layers" is given without layersToTransform/);
});

test('train: a refused combination ends the run with one sentence', async () => {
  const dir = await tempDir();
  const data = await smallDataset(dir);
  const r = cli(['train', '--model', MODEL, '--data', data, '--output', join(dir, 'run'), '--max-steps', '1', '--samples', '0', '--target-modules', 'q_proj', '--layers-pattern', 'layers']);
  assert.notEqual(r.code, 0);
  assert.match(oneSentence(r), /^loraforge: layersPattern "layers" is given without layersToTransform/);
});
