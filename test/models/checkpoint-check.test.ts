// A checkpoint is checked against its config.json from the headers before anything is allocated: each case is
// tiny-llama with one contradiction, run through the CLI command that loads it.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, tempDir, type CliResult } from '../cli/helpers.js';
import { fixturePath } from '../helpers/fixtures.js';
import { asInt32, editedFolder, poison, zerosTensor, type FolderEdit } from './edited-checkpoint.js';

const LLAMA = fixturePath('tiny-llama');
const QWEN2 = fixturePath('tiny-qwen2');

async function model(edit: FolderEdit, from = LLAMA): Promise<string> {
  return editedFolder(from, join(await tempDir(), 'model'), edit);
}

/** The only stderr line, which must carry no stack trace. */
function errorLine(r: CliResult): string {
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  return lines[0]!;
}

function generate(dir: string): CliResult {
  return cli(['generate', '--model', dir, '--prompt', 'ab', '--max-new-tokens', '2']);
}

test('a missing lm_head.weight with tie_word_embeddings false is refused, not tied', async () => {
  const dir = await model({ tensors: (t) => t.delete('lm_head.weight') });
  const r = generate(dir);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge: ${dir}/model.safetensors has no lm_head.weight but ${dir}/config.json sets tie_word_embeddings to false; add the output head's weights or set "tie_word_embeddings": true.`);
});

test('num_hidden_layers 1 over a 2-layer checkpoint is refused, naming layer 1', async () => {
  const dir = await model({ json: { num_hidden_layers: 1 } });
  const r = generate(dir);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge: ${dir}/model.safetensors holds "model.layers.1.input_layernorm.weight" of layer 1, but ${dir}/config.json sets num_hidden_layers to 1; use the config.json the weights were saved with.`);
});

test('num_hidden_layers 3 over a 2-layer checkpoint names the first missing tensor', async () => {
  const dir = await model({ json: { num_hidden_layers: 3 } });
  const r = cli(['inspect', dir]);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge: ${dir}/model.safetensors has no tensor "model.layers.2.self_attn.q_proj.weight", which ${dir}/config.json implies; the weights do not belong to this config.json or the file is incomplete.`);
});

test('tensors the config does not describe are refused, the first three named', async () => {
  const dir = await model({
    tensors: (t) => {
      for (const name of ['model.extra.a', 'model.extra.b', 'model.extra.c', 'model.extra.d']) t.set(name, zerosTensor([4]));
    },
  });
  const r = cli(['inspect', dir]);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge: ${dir}/model.safetensors holds 4 tensors that ${dir}/config.json does not describe ("model.extra.a", "model.extra.b", "model.extra.c", ...); remove them or use the config.json the weights were saved with.`);
});

test('rotary inv_freq buffers that older transformers saved are ignored', async () => {
  const dir = await model({ tensors: (t) => t.set('model.layers.0.self_attn.rotary_emb.inv_freq', zerosTensor([8])) });
  const r = generate(dir);
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
});

test('lm_head stored as I32 is refused before it is read', async () => {
  const dir = await model({ tensors: (t) => asInt32(t, 'lm_head.weight') });
  const r = generate(dir);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge: ${dir}/model.safetensors: tensor "lm_head.weight" is stored as int32, but weights must be float32, bfloat16 or float16; export the checkpoint with floating-point weights.`);
});

test('a tensor whose shape contradicts the config names the file, the tensor and both shapes', async () => {
  const dir = await model({ json: { intermediate_size: 128 } });
  const r = generate(dir);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge: ${dir}/model.safetensors stores "model.layers.0.mlp.gate_proj.weight" with shape [160, 64], but ${dir}/config.json implies [128, 64]; the weights do not belong to this config.json.`);
});

test('a stored lm_head.weight under tie_word_embeddings true is refused rather than ignored', async () => {
  const dir = await model({ json: { tie_word_embeddings: true } });
  const r = generate(dir);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge: ${dir}/model.safetensors holds lm_head.weight but ${dir}/config.json sets tie_word_embeddings to true, so that head would be ignored; set "tie_word_embeddings": false to use it, or remove the tensor.`);
});

test('NaN in a base weight is refused at load, so merge writes nothing', async () => {
  const dir = await model({ tensors: (t) => poison(t, 'model.layers.0.self_attn.q_proj.weight', Number.NaN, 5) });
  const out = join(await tempDir(), 'merged');
  const r = cli(['merge', '--model', dir, '--adapter', fixturePath('tiny-llama-lora'), '--output', out]);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge: ${dir}/model.safetensors: tensor "model.layers.0.self_attn.q_proj.weight" holds NaN at element 5; the weights are corrupt, so save or download them again.`);
  assert.equal(existsSync(out), false);
});

test('an infinite norm weight is refused at load', async () => {
  const dir = await model({ tensors: (t) => poison(t, 'model.norm.weight', Number.NEGATIVE_INFINITY) });
  const r = generate(dir);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge: ${dir}/model.safetensors: tensor "model.norm.weight" holds -Infinity at element 0; the weights are corrupt, so save or download them again.`);
});

test('rope_theta -1 next to rope_parameters is refused, not ignored', async () => {
  const dir = await model({ json: { rope_theta: -1 } });
  const r = generate(dir);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge: ${dir}/config.json: "rope_theta" must be a positive number, got -1.`);
});

test('a rope_theta that contradicts rope_parameters.rope_theta is refused', async () => {
  const dir = await model({ json: { rope_theta: 500000 } });
  const r = generate(dir);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge: ${dir}/config.json: "rope_theta" is 500000 but rope_parameters.rope_theta is 10000; keep one of them so the RoPE base is not ambiguous.`);
});

test('rope_theta -1 inside rope_parameters is refused', async () => {
  const dir = await model({ json: { rope_parameters: { rope_type: 'default', rope_theta: -1 } } });
  const r = generate(dir);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge: ${dir}/config.json rope_parameters: "rope_theta" must be a positive number, got -1.`);
});

test('NaN in config.json (as Python writes it) names the field', async () => {
  const dir = await model({ jsonText: (text) => text.replace('"rms_norm_eps": 0.00001', '"rms_norm_eps": NaN') });
  const r = generate(dir);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `loraforge: ${dir}/config.json: "rms_norm_eps" is NaN, which Python's json writes for a non-finite float but JSON does not allow; give it a finite value.`);
});

for (const [field, value, message] of [
  ['rms_norm_eps', 0, '"rms_norm_eps" must be positive, got 0.'],
  ['rms_norm_eps', '1e400', '"rms_norm_eps" must be a finite number, got Infinity.'],
  ['hidden_size', 64.5, '"hidden_size" must be a positive integer, got 64.5.'],
  ['num_attention_heads', -4, '"num_attention_heads" must be a positive integer, got -4.'],
  ['vocab_size', 0, '"vocab_size" must be a positive integer, got 0.'],
  ['max_position_embeddings', '-1e400', '"max_position_embeddings" must be a finite number, got -Infinity.'],
  ['attention_dropout', 1.5, '"attention_dropout" is a dropout probability and must be in [0, 1), got 1.5.'],
  ['eos_token_id', 0.5, '"eos_token_id" must be an integer or a list of integers (or null), got 0.5.'],
  ['original_max_position_embeddings', -8, '"original_max_position_embeddings" must be a positive integer, got -8.'],
] as const) {
  test(`config.json ${field} ${String(value)} is refused with one sentence`, async () => {
    // A string value stands for a number literal JSON.stringify cannot write (JSON.parse reads 1e400 as Infinity).
    const dir = await model(typeof value === 'string' ? { json: { [field]: '__LITERAL__' }, jsonText: (text) => text.replace('"__LITERAL__"', value) } : { json: { [field]: value } });
    const r = generate(dir);
    assert.equal(r.code, 1);
    assert.equal(errorLine(r), `loraforge: ${dir}/config.json: ${message}`);
  });
}

test('a tied checkpoint (tiny-qwen2) passes the check and generates', async () => {
  const r = generate(QWEN2);
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
});
