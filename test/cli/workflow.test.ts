import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cli, cliStreaming, MODEL, smallDataset, tempDir } from './helpers.js';

test('train writes the adapter in PEFT layout to --output; generate, merge and inspect use it', async () => {
  const dir = await tempDir();
  const out = join(dir, 'run');
  const data = await smallDataset(dir);
  const r = cli(['train', '--model', MODEL, '--data', data, '--output', out, '--max-steps', '3', '--batch-size', '4', '--validation-split', '0.25', '--r', '4', '--target-modules', 'q_proj,v_proj', '--logging-steps', '1']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /trainable params: 1,792 \|\| all params: 137,280/);
  assert.match(r.stdout, /held-out exact match: [\d.]+% before -> [\d.]+% after \(3 examples\)/);
  for (const f of ['adapter_config.json', 'adapter_model.safetensors', 'training_args.json', 'trainer_state.json', 'metrics.jsonl', 'report.html']) assert.ok(existsSync(join(out, f)), f);
  const config = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8'));
  assert.deepEqual([config.r, config.peft_type, [...config.target_modules].sort()], [4, 'LORA', ['q_proj', 'v_proj']]);

  const again = cli(['train', '--model', MODEL, '--data', data, '--output', out, '--max-steps', '1']);
  assert.equal(again.code, 2);
  const overwrite = cli(['train', '--model', MODEL, '--data', data, '--output', out, '--max-steps', '1', '--overwrite']);
  assert.equal(overwrite.code, 0, overwrite.stderr);
  assert.equal(JSON.parse(await readFile(join(out, 'trainer_state.json'), 'utf8')).global_step, 1);

  const generated = cli(['generate', '--adapter', out, '--model', MODEL, '--prompt', 'acd>', '--max-new-tokens', '4']);
  assert.equal(generated.code, 0, generated.stderr);
  const merged = join(dir, 'merged');
  const merge = cli(['merge', '--adapter', out, '--model', MODEL, '--output', merged]);
  assert.equal(merge.code, 0, merge.stderr);
  assert.ok(existsSync(join(merged, 'model.safetensors')) && existsSync(join(merged, 'tokenizer.json')));
  const inspectAdapter = cli(['inspect', out]);
  assert.equal(inspectAdapter.code, 0, inspectAdapter.stderr);
  assert.match(inspectAdapter.stdout, /LoRA r 8, alpha 16; targets /);
  const inspectModel = cli(['inspect', MODEL]);
  assert.match(inspectModel.stdout, /parameters: 135,488/);
});

test('Ctrl-C saves a checkpoint and exits cleanly; --resume continues from it', async () => {
  const dir = await tempDir();
  const out = join(dir, 'run');
  const data = await smallDataset(dir);
  let interrupted = false;
  const r = await cliStreaming(['train', '--model', MODEL, '--data', data, '--output', out, '--max-steps', '500', '--batch-size', '2', '--logging-steps', '1'], (line, child) => {
    if (!interrupted && /^step 3\//.test(line)) {
      interrupted = true;
      child.kill('SIGINT');
    }
  });
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stdout, /Interrupted: finishing this step and writing a checkpoint/);
  const [checkpoint] = readdirSync(out).filter((e) => e.startsWith('checkpoint-'));
  assert.ok(checkpoint, 'a checkpoint was written');
  const step = Number(checkpoint.slice('checkpoint-'.length));
  assert.match(r.stdout, new RegExp(`Stopped at step ${step}/500; the checkpoint is saved\\. Continue with: loraforge train --output ${out} --resume`));

  const resumed = cli(['train', '--output', out, '--resume', '--max-steps', String(step + 2)]);
  assert.equal(resumed.code, 0, resumed.stderr);
  const state = JSON.parse(await readFile(join(out, 'trainer_state.json'), 'utf8'));
  assert.equal(state.global_step, step + 2);
  assert.equal(state.train_batch_size, 2, 'options not given again come from the run folder');
});
