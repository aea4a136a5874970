// A mixture-of-experts model from the command line: train LoRA on attention and the experts (--target-parameters),
// with and without --qlora, generate with the adapter, merge, and generate from the merged checkpoint.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixturePath } from '../helpers/fixtures.js';
import { cli, smallDataset, tempDir } from '../cli/helpers.js';

const EXPERTS = 'experts.gate_up_proj,experts.down_proj';

for (const name of ['tiny-mixtral', 'tiny-gptoss']) {
  test(`${name}: train expert and attention LoRA, generate, merge, and the merged model generates the same`, async () => {
    const model = fixturePath(name);
    const dir = await tempDir();
    const out = join(dir, 'run');
    const data = await smallDataset(dir);
    const train = cli(['train', '--model', model, '--data', data, '--output', out, '--max-steps', '2', '--batch-size', '4', '--r', '4', '--target-modules', 'q_proj,v_proj', '--target-parameters', EXPERTS, '--lora-dropout', '0']);
    assert.equal(train.code, 0, train.stderr);
    const config = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8')) as { target_parameters: string[] };
    assert.deepEqual(config.target_parameters, EXPERTS.split(','));

    const generated = cli(['generate', '--model', model, '--adapter', out, '--prompt', 'acd>', '--max-new-tokens', '4']);
    assert.equal(generated.code, 0, generated.stderr);
    const merged = join(dir, 'merged');
    const merge = cli(['merge', '--model', model, '--adapter', out, '--output', merged]);
    assert.equal(merge.code, 0, merge.stderr);
    const fromMerged = cli(['generate', '--model', merged, '--prompt', 'acd>', '--max-new-tokens', '4']);
    assert.equal(fromMerged.code, 0, fromMerged.stderr);
    assert.equal(fromMerged.stdout, generated.stdout, 'the merged model generates what base + adapter generates');
  });
}

test('tiny-qwen3moe: train --qlora trains expert adapters over NF4 experts and generates with them', async () => {
  const dir = await tempDir();
  const out = join(dir, 'run');
  const train = cli(['train', '--model', fixturePath('tiny-qwen3moe'), '--data', await smallDataset(dir), '--output', out, '--max-steps', '2', '--batch-size', '4', '--r', '4', '--target-modules', 'q_proj', '--target-parameters', EXPERTS, '--lora-dropout', '0', '--qlora']);
  assert.equal(train.code, 0, train.stderr);
  const generated = cli(['generate', '--model', fixturePath('tiny-qwen3moe'), '--adapter', out, '--prompt', 'acd>', '--max-new-tokens', '4']);
  assert.equal(generated.code, 0, generated.stderr);
});

test('--target-parameters with the default --lora-dropout is refused in one sentence', async () => {
  const dir = await tempDir();
  const train = cli(['train', '--model', fixturePath('tiny-mixtral'), '--data', await smallDataset(dir), '--output', join(dir, 'run'), '--max-steps', '1', '--target-parameters', EXPERTS]);
  assert.equal(train.code, 1);
  assert.equal(train.stderr, "loraforge: loraDropout 0.05 cannot be used with targetParameters (PEFT's ParamWrapper cannot apply dropout to the input of a parameter); set loraDropout to 0.\n");
});
