// quantize checks a dense checkpoint against its config.json before writing anything, and a bnb-4bit checkpoint's
// quant-state errors name the file and the tensor: each case is a fixture with one edit, run through the CLI.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, tempDir, type CliResult } from '../cli/helpers.js';
import { fixturePath } from '../helpers/fixtures.js';
import { editedFolder, poison, type FolderEdit } from '../models/edited-checkpoint.js';

const Q0 = 'model.layers.0.self_attn.q_proj.weight';

async function edited(from: string, edit: FolderEdit): Promise<string> {
  return editedFolder(fixturePath(from), join(await tempDir(), 'model'), edit);
}

function errorLine(r: CliResult): string {
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  return lines[0]!;
}

async function quantize(dir: string): Promise<{ r: CliResult; out: string }> {
  const out = join(await tempDir(), 'nf4');
  return { r: cli(['quantize', '--model', dir, '--output', out]), out };
}

test('quantize refuses a config.json whose hidden_size contradicts the tensors, and writes no folder', async () => {
  const dir = await edited('tiny-llama', { json: { hidden_size: 32 } });
  const { r, out } = await quantize(dir);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge quantize: ${dir}/model.safetensors stores "model.embed_tokens.weight" with shape [384, 64], but ${dir}/config.json implies [384, 32]; the weights do not belong to this config.json.`);
  assert.equal(existsSync(out), false);
});

test('quantize refuses attention_bias true over a checkpoint without biases', async () => {
  const dir = await edited('tiny-llama', { json: { attention_bias: true } });
  const { r, out } = await quantize(dir);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge quantize: ${dir}/model.safetensors has no tensor "model.layers.0.self_attn.q_proj.bias", which ${dir}/config.json implies; the weights do not belong to this config.json or the file is incomplete.`);
  assert.equal(existsSync(out), false);
});

test('quantize refuses num_hidden_layers 1 over a 2-layer checkpoint', async () => {
  const dir = await edited('tiny-llama', { json: { num_hidden_layers: 1 } });
  const { r, out } = await quantize(dir);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge quantize: ${dir}/model.safetensors holds "model.layers.1.input_layernorm.weight" of layer 1, but ${dir}/config.json sets num_hidden_layers to 1; use the config.json the weights were saved with.`);
  assert.equal(existsSync(out), false);
});

test('quantize refuses NaN in a projection it would quantize, and removes the folder it created', async () => {
  const dir = await edited('tiny-llama', { tensors: (t) => poison(t, Q0, Number.NaN, 7) });
  const { r, out } = await quantize(dir);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge quantize: ${dir}/model.safetensors: tensor "${Q0}" holds NaN at element 7; the weights are corrupt, so save or download them again.`);
  assert.equal(existsSync(out), false);
});

test('a bnb quant state whose shape contradicts config.json names the file and the weight', async () => {
  const dir = await edited('tiny-llama-bnb-4bit', {
    tensors: (t) => {
      const name = `${Q0}.quant_state.bitsandbytes__nf4`;
      const state = JSON.parse(new TextDecoder().decode(t.get(name)!.data)) as Record<string, unknown>;
      const data = new TextEncoder().encode(JSON.stringify({ ...state, shape: [32, 128] }));
      t.set(name, { dtype: 'uint8', shape: [data.length], data });
    },
  });
  const r = cli(['generate', '--model', dir, '--prompt', 'ab', '--max-new-tokens', '1']);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge: ${dir}/model.safetensors: the 4-bit weight "${Q0}" has quant-state shape [32, 128], but the config implies [64, 64]; the weights do not belong to this config.json.`);
});

test('a Python NaN literal in a bnb quant state names the file, the weight and the field', async () => {
  const name = `${Q0}.quant_state.bitsandbytes__nf4`;
  const dir = await edited('tiny-llama-bnb-4bit', {
    tensors: (t) => {
      const text = new TextDecoder().decode(t.get(name)!.data).replace(/"nested_offset": [^,}]+/, '"nested_offset": NaN');
      const data = new TextEncoder().encode(text);
      t.set(name, { dtype: 'uint8', shape: [data.length], data });
    },
  });
  const r = cli(['generate', '--model', dir, '--prompt', 'ab', '--max-new-tokens', '1']);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge: ${dir}/model.safetensors: the bitsandbytes quant state of "${Q0}": "nested_offset" is NaN, which Python's json writes for a non-finite float but JSON does not allow; give it a finite value.`);
});

test('NaN in a bnb nested_absmax is refused at load, naming the file and the tensor', async () => {
  const dir = await edited('tiny-llama-bnb-4bit', { tensors: (t) => poison(t, `${Q0}.nested_absmax`, Number.NaN) });
  const r = cli(['generate', '--model', dir, '--prompt', 'ab', '--max-new-tokens', '1']);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge: ${dir}/model.safetensors: tensor "${Q0}.nested_absmax" holds NaN at element 0; the weights are corrupt, so save or download them again.`);
});
