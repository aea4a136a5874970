// An adapter is checked against its adapter_config.json and the base model before anything of a size read from
// either file is allocated, and a load that fails leaves the model exactly as it was.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { LoraLinear, PeftModel } from '../../src/peft/index.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import { cli, MAIN, oneSentence, tempDir as cliTempDir, type CliResult } from '../cli/helpers.js';
import { fixturePath } from '../helpers/fixtures.js';
import { asInt32, editedFolder, poison, type FolderEdit } from '../models/edited-checkpoint.js';
import { loadBase } from './helpers.js';

const BASE = fixturePath('tiny-llama');
const LORA = fixturePath('tiny-llama-lora');
const PEAK_RSS = fileURLToPath(new URL('../helpers/peak-rss.js', import.meta.url));
const MB = 1024 * 1024;
const IDS = [[1, 5, 9, 17, 33, 65]];
const LAST_KEY = 'base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight';

async function adapter(edit: Omit<FolderEdit, 'jsonName' | 'weightsName'>): Promise<string> {
  return editedFolder(LORA, join(await cliTempDir(), 'adapter'), { ...edit, jsonName: 'adapter_config.json', weightsName: 'adapter_model.safetensors' });
}

/** Runs the CLI with the peak-RSS probe preloaded; returns its result and its peak resident set size in bytes. */
async function cliWithPeak(args: readonly string[]): Promise<CliResult & { peak: number }> {
  const probe = join(await cliTempDir(), 'peak-rss');
  const r = spawnSync(process.execPath, ['--import', PEAK_RSS, MAIN, ...args], { encoding: 'utf8', env: { ...process.env, LORAFORGE_DEBUG: '', LORAFORGE_PEAK_RSS_FILE: probe } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, peak: Number(readFileSync(probe, 'utf8')) };
}

async function logits(model: { run(i: { inputIds: number[][] }): { logits: { data(): Promise<Float32Array> } } }): Promise<Float32Array> {
  return noGrad(() => model.run({ inputIds: IDS })).logits.data();
}

function parameterState(model: CausalLM): [string, readonly number[], boolean][] {
  return [...model.namedParameters()].map(([name, t]) => [name, t.shape, t.requiresGrad]);
}

function hasLoraLayers(model: CausalLM): boolean {
  return [...model.namedModules()].some(([, m]) => m instanceof LoraLinear);
}

test('r = 1e12 in adapter_config.json is refused from the headers, merge writes nothing, peak RSS stays under 200 MB', async () => {
  const dir = await adapter({ json: { r: 1e12 } });
  const out = join(await cliTempDir(), 'merged');
  const r = await cliWithPeak(['merge', '--model', BASE, '--adapter', dir, '--output', out]);
  assert.equal(r.code, 1);
  assert.equal(
    oneSentence(r),
    `loraforge: ${dir}/adapter_config.json gives model.layers.0.self_attn.q_proj rank 1000000000000, but ${dir}/adapter_model.safetensors stores base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight as [8, 64], of rank 8; the config does not belong to these weights, so save the adapter again.`,
  );
  assert.equal(existsSync(out), false);
  assert.ok(r.peak < 200 * MB, `peak RSS ${(r.peak / MB).toFixed(0)} MB`);
});

test('r = 1e6 over rank-8 tensors is refused before allocating, peak RSS stays under 200 MB', async () => {
  const dir = await adapter({ json: { r: 1e6 } });
  const r = await cliWithPeak(['generate', '--model', BASE, '--adapter', dir, '--prompt', 'ab', '--max-new-tokens', '2']);
  assert.equal(r.code, 1);
  assert.equal(
    oneSentence(r),
    `loraforge: ${dir}/adapter_config.json gives model.layers.0.self_attn.q_proj rank 1000000, but ${dir}/adapter_model.safetensors stores base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight as [8, 64], of rank 8; the config does not belong to these weights, so save the adapter again.`,
  );
  assert.ok(r.peak < 200 * MB, `peak RSS ${(r.peak / MB).toFixed(0)} MB`);
});

test('inspect checks an adapter\'s ranks against its config without a base model', async () => {
  const dir = await adapter({ json: { rank_pattern: { 'layers.1.mlp.up_proj': 4 } } });
  const r = cli(['inspect', dir]);
  assert.equal(r.code, 1);
  assert.equal(
    oneSentence(r),
    `loraforge: ${dir}/adapter_config.json gives model.layers.1.mlp.up_proj rank 4, but ${dir}/adapter_model.safetensors stores base_model.model.model.layers.1.mlp.up_proj.lora_A.weight as [8, 64], of rank 8; the config does not belong to these weights, so save the adapter again.`,
  );
});

test('NaN in an adapter tensor is refused at load, so generate never runs it', async () => {
  const dir = await adapter({ tensors: (t) => poison(t, LAST_KEY, Number.NaN, 3) });
  const r = cli(['generate', '--model', BASE, '--adapter', dir, '--prompt', 'ab', '--max-new-tokens', '2']);
  assert.equal(r.code, 1);
  assert.equal(oneSentence(r), `loraforge: ${dir}/adapter_model.safetensors: tensor "${LAST_KEY}" holds NaN at element 3; the weights are corrupt, so save or download them again.`);
});

test('merge refuses an adapter whose merged weights overflow float32, naming the folder, and writes nothing', async () => {
  // Finite factors of 3e19 give products of about 1e40 in q_proj's merged weight: infinity in float32.
  const dir = await adapter({
    tensors: (t) => {
      for (const [name, v] of t) if (name.includes('layers.0.self_attn.q_proj')) new Float32Array(v.data.buffer, v.data.byteOffset, v.data.byteLength / 4).fill(3e19);
    },
  });
  const out = join(await cliTempDir(), 'merged');
  const r = cli(['merge', '--model', BASE, '--adapter', dir, '--output', out]);
  assert.equal(r.code, 1);
  assert.equal(oneSentence(r), `loraforge: ${dir}: NaNs or infinities detected in the merged weights of model.layers.0.self_attn.q_proj for adapter "default"; the adapter seems to be broken, so nothing was merged.`);
  assert.equal(existsSync(out), false);
});

test('an adapter tensor stored as int32 is refused by inspect', async () => {
  const key = 'base_model.model.model.layers.0.mlp.down_proj.lora_A.weight';
  const dir = await adapter({ tensors: (t) => asInt32(t, key) });
  const r = cli(['inspect', dir]);
  assert.equal(r.code, 1);
  assert.equal(oneSentence(r), `loraforge: ${dir}/adapter_model.safetensors: tensor "${key}" is stored as int32, but weights must be float32, bfloat16 or float16; export the checkpoint with floating-point weights.`);
});

test('a bad adapter_config.json value is refused in a sentence naming the file', async () => {
  const dir = await adapter({ json: { lora_dropout: 1.5 } });
  const r = cli(['inspect', dir]);
  assert.equal(r.code, 1);
  assert.equal(oneSentence(r), `loraforge: ${dir}/adapter_config.json: lora_dropout must be in [0, 1), got 1.5.`);
});

test('NaN in adapter_config.json (as Python writes it) names the file and the field', async () => {
  const dir = await adapter({ json: { lora_alpha: '__X__' }, jsonText: (text) => text.replace('"__X__"', 'NaN') });
  const r = cli(['inspect', dir]);
  assert.equal(r.code, 1);
  assert.equal(oneSentence(r), `loraforge: ${dir}/adapter_config.json: "lora_alpha" is NaN, which Python's json writes for a non-finite float but JSON does not allow; give it a finite value.`);
});

test('target_modules that match nothing in the base name the adapter_config.json they came from', async () => {
  const dir = await adapter({ json: { target_modules: ['qkv_proj'] } });
  const r = cli(['generate', '--model', BASE, '--adapter', dir, '--prompt', 'ab', '--max-new-tokens', '1']);
  assert.equal(r.code, 1);
  assert.equal(
    oneSentence(r),
    `loraforge: ${dir}/adapter_config.json: target_modules ["qkv_proj"] match no module of the base model; its linear modules are q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head (e.g. model.layers.0.self_attn.q_proj).`,
  );
});

test('a failed PeftModel.fromPretrained leaves the model as it was, and the next good adapter loads onto it', async () => {
  const model = await loadBase('tiny-llama');
  const before = parameterState(model);
  const baseLogits = await logits(model);
  // NaN in the last tensor read: every layer has been wrapped for the adapter when the load fails.
  const bad = await adapter({ tensors: (t) => poison(t, LAST_KEY, Number.NaN) });
  await assert.rejects(PeftModel.fromPretrained(model, bad), /holds NaN at element 0/);
  assert.equal(hasLoraLayers(model), false);
  assert.deepEqual(parameterState(model), before);
  assert.deepEqual(await logits(model), baseLogits);
  const good = await PeftModel.fromPretrained(model, LORA);
  const fresh = await PeftModel.fromPretrained(await loadBase('tiny-llama'), LORA);
  assert.deepEqual(await logits(good), await logits(fresh));
});

test('a rank mismatch in a later layer leaves the layers already wrapped unwrapped again', async () => {
  const model = await loadBase('tiny-llama');
  const before = parameterState(model);
  const bad = await adapter({ json: { rank_pattern: { 'layers.1.mlp.down_proj': 4 } } });
  await assert.rejects(PeftModel.fromPretrained(model, bad), /gives model\.layers\.1\.mlp\.down_proj rank 4/);
  assert.equal(hasLoraLayers(model), false);
  assert.deepEqual(parameterState(model), before);
});

test('a failed loadAdapter leaves the loaded adapters and the outputs unchanged', async () => {
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-llama'), fixturePath('tiny-llama-lora_qv'));
  const names = [...peft.namedParameters()].map(([n]) => n);
  const out = await logits(peft);
  const bad = await adapter({ tensors: (t) => poison(t, LAST_KEY, Number.POSITIVE_INFINITY) });
  await assert.rejects(peft.loadAdapter(bad, 'second'), /holds Infinity at element 0/);
  assert.deepEqual([...peft.peftConfig.keys()], ['default']);
  assert.deepEqual([...peft.namedParameters()].map(([n]) => n), names);
  assert.deepEqual(await logits(peft), out);
  await peft.loadAdapter(LORA, 'second');
  assert.deepEqual([...peft.peftConfig.keys()], ['default', 'second']);
});
