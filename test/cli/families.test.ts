// Every dense family works from the command line as the Llama family does: train, generate with the adapter,
// merge, quantize, inspect and serve, on each tiny fixture model.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixturePath } from '../helpers/fixtures.js';
import { cli, serveOnce, smallDataset, tempDir } from './helpers.js';

for (const name of ['tiny-qwen3', 'tiny-gemma2', 'tiny-gemma3', 'tiny-phi3', 'tiny-smollm3', 'tiny-olmo2']) {
  test(`${name}: train, generate, merge, quantize, inspect and serve from the CLI`, async () => {
    const model = fixturePath(name);
    const dir = await tempDir();
    const out = join(dir, 'run');
    const data = await smallDataset(dir);
    const r = cli(['train', '--model', model, '--data', data, '--output', out, '--max-steps', '2', '--batch-size', '4', '--r', '4', '--target-modules', 'all-linear', '--validation-split', '0.25']);
    assert.equal(r.code, 0, r.stderr);
    const config = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8')) as { target_modules: string[] };
    const expected = name === 'tiny-phi3' ? ['down_proj', 'gate_up_proj', 'o_proj', 'qkv_proj'] : ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj'];
    assert.deepEqual([...new Set(config.target_modules.map((t) => t.split('.').pop()!))].sort(), expected);

    const generated = cli(['generate', '--model', model, '--adapter', out, '--prompt', 'acd>', '--max-new-tokens', '4']);
    assert.equal(generated.code, 0, generated.stderr);

    const merged = join(dir, 'merged');
    const merge = cli(['merge', '--model', model, '--adapter', out, '--output', merged]);
    assert.equal(merge.code, 0, merge.stderr);
    assert.ok(existsSync(join(merged, 'model.safetensors')));
    const fromMerged = cli(['generate', '--model', merged, '--prompt', 'acd>', '--max-new-tokens', '4']);
    assert.equal(fromMerged.code, 0, fromMerged.stderr);
    assert.equal(fromMerged.stdout, generated.stdout, 'the merged model generates what base + adapter generates');

    const quantized = join(dir, 'nf4');
    const quantize = cli(['quantize', '--model', model, '--output', quantized]);
    assert.equal(quantize.code, 0, quantize.stderr);
    const qConfig = JSON.parse(await readFile(join(quantized, 'config.json'), 'utf8')) as { quantization_config: { quant_method: string } };
    assert.equal(qConfig.quantization_config.quant_method, 'bitsandbytes');
    const fromQuantized = cli(['generate', '--model', quantized, '--prompt', 'acd>', '--max-new-tokens', '4']);
    assert.equal(fromQuantized.code, 0, fromQuantized.stderr);

    const inspect = cli(['inspect', model]);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.match(inspect.stdout, new RegExp(`${JSON.parse(await readFile(join(model, 'config.json'), 'utf8')).architectures[0]}`));

    assert.equal(typeof (await serveOnce(['--model', model, '--adapter', `a=${out}`], { model: 'a', prompt: 'acd>', max_tokens: 4, temperature: 0 })), 'string');
  });
}
