// What a newcomer meets first: --version, one --help layout, one-sentence errors with "did you mean",
// Hugging Face spellings in config files, warnings on half-matched --target-modules, context-length checks,
// and the console's loss being the logged (window-mean) loss.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONFIG_ALIASES, normalizeConfig, resolveOptions } from '../../src/cli/options.js';
import { TRAIN_OPTIONS } from '../../src/cli/train-options.js';
import { unmatchedTargetNames } from '../../src/peft/targets.js';
import { cli, MODEL, oneSentence, smallDataset, tempDir } from './helpers.js';

const PACKAGE = JSON.parse(readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8')) as { version: string };
const COMMANDS = ['train', 'generate', 'merge', 'inspect', 'quantize', 'serve'];

test('--version and -v print the package version, exit 0', () => {
  for (const flag of ['--version', '-v']) {
    const r = cli([flag]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `loraforge ${PACKAGE.version}\n`);
  }
});

test('every command answers --help in one layout: usage line, one-line description, typed options with defaults', () => {
  for (const command of COMMANDS) {
    const r = cli([command, '--help']);
    assert.equal(r.code, 0, `${command}: ${r.stderr}`);
    assert.equal(r.stderr, '');
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, new RegExp(`^usage: loraforge ${command}( |$)`), command);
    assert.equal(lines[1], '', command);
    assert.match(lines[2]!, /^[A-Z].*\.$/, command);
    assert.deepEqual(lines.slice(3, 5), ['', 'options:'], command);
    const rest = lines.slice(5);
    assert.ok(rest.length >= 2 && rest.length % 2 === 0, command);
    for (let i = 0; i < rest.length; i += 2) {
      assert.match(rest[i]!, /^ {2}--[a-z][a-z0-9-]*( <[a-z0-9|_.-]+>| \[<path>\])?$/, `${command}: ${rest[i]}`);
      assert.match(rest[i + 1]!, /^ {6}\S/, `${command}: ${rest[i + 1]}`);
    }
    assert.equal(cli([command, '-h']).stdout, r.stdout, command);
  }
  assert.match(cli(['train', '--help']).stdout, /\n {2}--lr <number>\n {6}peak learning rate \(default [\d.e-]+\)\n/);
  assert.match(cli(['serve', '--help']).stdout, /\n {2}--port <integer>\n {6}TCP port \(0: any free port\) \(default \d+\)\n/);
});

test('a usage mistake is one sentence on stderr and exit code 2 for every command, never the help', () => {
  for (const command of COMMANDS) {
    const r = cli([command, '--bogus-flag', '1']);
    assert.equal(r.code, 2, command);
    assert.equal(r.stdout, '', command);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `${command}: ${r.stderr}`);
    assert.match(lines[0]!, new RegExp(`^loraforge( ${command})?: Unknown option --bogus-flag; the options are --`), command);
  }
  const serve = cli(['serve']);
  assert.equal(serve.code, 2);
  assert.equal(serve.stderr, 'loraforge: --model is required: the folder (or Hub id) of the base model.\n');
  const quantize = cli(['quantize', '--model', MODEL]);
  assert.equal(quantize.code, 2);
  assert.equal(quantize.stderr, 'loraforge quantize: --output is required: a new folder for the 4-bit model.\n');
});

test('"did you mean" for unknown flags, Hugging Face names and underscores included', () => {
  assert.equal(oneSentence(cli(['train', '--learning-rate', '1e-4'])), 'loraforge: Unknown option --learning-rate; did you mean --lr?');
  assert.equal(oneSentence(cli(['train', '--learning_rate', '1e-4'])), 'loraforge: Unknown option --learning_rate; did you mean --lr?');
  assert.equal(oneSentence(cli(['train', '--num-train-epochs', '2'])), 'loraforge: Unknown option --num-train-epochs; did you mean --epochs?');
  assert.equal(oneSentence(cli(['train', '--lora_alpha', '2'])), 'loraforge: Unknown option --lora_alpha; did you mean --lora-alpha?');
  assert.equal(oneSentence(cli(['train', '--max-step', '2'])), 'loraforge: Unknown option --max-step; did you mean --max-steps?');
  assert.equal(oneSentence(cli(['generate', '--max-new-token', '2'])), 'loraforge: Unknown option --max-new-token; did you mean --max-new-tokens?');
  assert.equal(cli(['serve', '--prot', '1']).stderr, 'loraforge: Unknown option --prot; did you mean --port?\n');
  assert.equal(cli(['quantize', '--blocksiz', '64']).stderr, 'loraforge quantize: Unknown option --blocksiz; did you mean --blocksize?\n');
});

test('"did you mean" for config-file keys; one option in two spellings is refused', async () => {
  const dir = await tempDir();
  const typo = join(dir, 'typo.yaml');
  await writeFile(typo, 'lerning_rate: 0.001\n');
  let r = cli(['train', '--config', typo]);
  assert.equal(r.code, 2);
  assert.equal(oneSentence(r), `loraforge: ${typo}: unknown field "lerning_rate"; did you mean "learning_rate"?`);
  const twice = join(dir, 'twice.yaml');
  await writeFile(twice, 'lr: 0.001\nlearning_rate: 0.002\n');
  r = cli(['train', '--config', twice]);
  assert.equal(r.code, 2);
  assert.equal(oneSentence(r), `loraforge: ${twice}: fields "lr" and "learning_rate" both set lr; give one of them.`);
  const dashes = join(dir, 'dashes.json');
  await writeFile(dashes, JSON.stringify({ 'lora-alpha': 8, lora_alpha: 8 }));
  assert.equal(oneSentence(cli(['train', '--config', dashes])), `loraforge: ${dashes}: fields "lora-alpha" and "lora_alpha" both set lora-alpha; give one of them.`);
});

test('config files accept the Hugging Face spellings of TrainingArguments, LoraConfig and TRL fields', () => {
  const hf = {
    learning_rate: 1e-4, num_train_epochs: 2, max_steps: 7, per_device_train_batch_size: 3, gradient_accumulation_steps: 4, warmup_steps: 5,
    weight_decay: 0.1, max_grad_norm: 0.5, lr_scheduler_type: 'cosine', seed: 9, logging_steps: 2, eval_steps: 6, save_steps: 8, save_total_limit: 1,
    output_dir: 'out', gradient_checkpointing: true, lora_alpha: 32, lora_dropout: 0.1, target_modules: ['q_proj', 'v_proj'], use_rslora: true, use_dora: true,
    max_seq_length: 128, r: 4,
  };
  const v = resolveOptions(TRAIN_OPTIONS, new Map(), hf, 'hf.yaml');
  assert.deepEqual(
    {
      lr: v['lr'], epochs: v['epochs'], 'max-steps': v['max-steps'], 'batch-size': v['batch-size'], 'grad-accum': v['grad-accum'], 'warmup-steps': v['warmup-steps'],
      'weight-decay': v['weight-decay'], 'max-grad-norm': v['max-grad-norm'], 'lr-scheduler': v['lr-scheduler'], seed: v['seed'], 'logging-steps': v['logging-steps'],
      'eval-steps': v['eval-steps'], 'save-steps': v['save-steps'], 'save-total-limit': v['save-total-limit'], output: v['output'],
      'gradient-checkpointing': v['gradient-checkpointing'], 'lora-alpha': v['lora-alpha'], 'lora-dropout': v['lora-dropout'], 'target-modules': v['target-modules'],
      'use-rslora': v['use-rslora'], 'use-dora': v['use-dora'], 'seq-len': v['seq-len'], r: v['r'],
    },
    {
      lr: 1e-4, epochs: 2, 'max-steps': 7, 'batch-size': 3, 'grad-accum': 4, 'warmup-steps': 5, 'weight-decay': 0.1, 'max-grad-norm': 0.5, 'lr-scheduler': 'cosine',
      seed: 9, 'logging-steps': 2, 'eval-steps': 6, 'save-steps': 8, 'save-total-limit': 1, output: 'out', 'gradient-checkpointing': true, 'lora-alpha': 32,
      'lora-dropout': 0.1, 'target-modules': 'q_proj,v_proj', 'use-rslora': true, 'use-dora': true, 'seq-len': 128, r: 4,
    },
  );
  assert.deepEqual(normalizeConfig(TRAIN_OPTIONS, { learning_rate: 1, max_seq_length: 8, batch_size: 2 }), { lr: 1, 'seq-len': 8, 'batch-size': 2 });
  for (const target of Object.values(CONFIG_ALIASES)) assert.ok(target in TRAIN_OPTIONS, target);
});

test('unmatchedTargetNames: the names of a list that match no module path', () => {
  const paths = ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'lm_head'];
  assert.deepEqual(unmatchedTargetNames(paths, ['q_proj', 'v_prj', 'self_attn.v_proj', 'lm_head', 'k_proj']), ['v_prj', 'k_proj']);
  assert.deepEqual(unmatchedTargetNames(paths, 'q_proj|v_prj'), []);
});

test('train: HF config keys apply, half-matched --target-modules warn, the console loss is the logged window mean', async () => {
  const dir = await tempDir();
  const out = join(dir, 'run');
  const config = join(dir, 'hf.yaml');
  await writeFile(config, `learning_rate: 0.02\nmax_steps: 4\nper_device_train_batch_size: 2\nlogging_steps: 2\nsave_steps: 0\noutput_dir: ${out}\nmax_seq_length: 64\nlora_alpha: 8\n`);
  const r = cli(['train', '--config', config, '--model', MODEL, '--data', await smallDataset(dir), '--target-modules', 'q_proj,v_prj', '--r', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, 'loraforge: warning: --target-modules v_prj matches no module of the model, so only q_proj is adapted; did you mean v_proj?\n');
  const saved = JSON.parse(await readFile(join(out, 'training_args.json'), 'utf8')) as { loraforge_options: Record<string, unknown> };
  const o = saved.loraforge_options;
  assert.deepEqual([o['lr'], o['max-steps'], o['batch-size'], o['logging-steps'], o['seq-len'], o['lora-alpha']], [0.02, 4, 2, 2, 64, 8]);
  const adapterConfig = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8')) as { target_modules: string[] };
  assert.deepEqual([...adapterConfig.target_modules].sort(), ['q_proj', 'v_prj']);
  const logged = (await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>).filter((e) => typeof e['loss'] === 'number');
  const printed = [...r.stdout.matchAll(/^step (\d+)\/4 {2}loss ([\d.]+) /gm)].map((m) => [Number(m[1]), m[2]]);
  assert.deepEqual(printed, logged.map((e) => [e['step'], e['loss']!.toFixed(4)]));
  assert.equal(printed.length, 2);
});

test('no warning when every --target-modules name matches', async () => {
  const dir = await tempDir();
  const r = cli(['train', '--model', MODEL, '--data', await smallDataset(dir), '--output', join(dir, 'run'), '--max-steps', '1', '--target-modules', 'q_proj,v_proj', '--samples', '0']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
});

test('sequence lengths over the model context are refused, naming both numbers', async () => {
  const dir = await tempDir();
  const train = cli(['train', '--model', MODEL, '--data', await smallDataset(dir), '--output', join(dir, 'run'), '--seq-len', '1000']);
  assert.equal(train.code, 2);
  assert.equal(oneSentence(train), "loraforge: --seq-len 1000 is longer than the model's context of 256 tokens (max_position_embeddings); give --seq-len 256 or less.");
  const generate = cli(['generate', '--model', MODEL, '--prompt', 'acd>', '--max-new-tokens', '300']);
  assert.equal(generate.code, 2);
  const m = /^loraforge: The prompt \((\d+) tokens\) plus --max-new-tokens 300 is (\d+) tokens, more than the model's context of 256 tokens \(max_position_embeddings\); shorten the prompt or lower --max-new-tokens\.$/.exec(oneSentence(generate));
  assert.ok(m, generate.stderr);
  assert.equal(Number(m[2]), Number(m[1]) + 300);
  const fits = cli(['generate', '--model', MODEL, '--prompt', 'acd>', '--max-new-tokens', String(256 - Number(m[1]))]);
  assert.equal(fits.code, 0, fits.stderr);
});
