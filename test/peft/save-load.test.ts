import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { mulScalar, sub, writeSlice } from '../../src/ops/index.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import { ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, getPeftModel, LoraLinear, PeftModel } from '../../src/peft/index.js';
import type { Linear } from '../../src/nn/layers.js';
import { adapterDir, assertTensorClose, loadBase, refBatch, refValues, tempDir, VARIANTS, type BaseName } from './helpers.js';

for (const base of Object.keys(VARIANTS) as BaseName[]) {
  for (const variant of VARIANTS[base]) {
    test(`${base}-${variant}: load then save reproduces PEFT's adapter files byte for byte`, async () => {
      const dir = await tempDir();
      const peft = await PeftModel.fromPretrained(await loadBase(base), adapterDir(base, variant));
      await peft.savePretrained(dir);
      for (const file of [ADAPTER_WEIGHTS_NAME, ADAPTER_CONFIG_NAME]) {
        assert.deepEqual(await readFile(join(dir, file)), await readFile(join(adapterDir(base, variant), file)), file);
      }
    });
  }
}

test('saved adapter tensors keep their keys, dtypes, shapes and values', async () => {
  const dir = await tempDir();
  const source = adapterDir('tiny-llama', 'dora');
  await (await PeftModel.fromPretrained(await loadBase('tiny-llama'), source)).savePretrained(dir);
  const [saved, original] = await Promise.all([SafetensorsFile.open(join(dir, ADAPTER_WEIGHTS_NAME)), SafetensorsFile.open(join(source, ADAPTER_WEIGHTS_NAME))]);
  try {
    assert.deepEqual(saved.names().sort(), original.names().sort());
    for (const name of original.names()) {
      const { dtype, shape } = original.info(name);
      assert.deepEqual({ dtype: saved.info(name).dtype, shape: saved.info(name).shape }, { dtype, shape }, name);
      assert.deepEqual(await saved.read(name), await original.read(name), name);
    }
  } finally {
    await Promise.all([saved.close(), original.close()]);
  }
});

test('adapter_config.json of a new adapter carries every field PEFT 0.21 writes, with the chosen r, alpha, targets and flags', async () => {
  const dir = await tempDir();
  const peft = getPeftModel(await loadBase('tiny-llama'), { r: 4, loraAlpha: 8, loraDropout: 0.05, targetModules: ['q_proj', 'v_proj'], useRslora: true, useDora: true });
  await peft.savePretrained(dir);
  const written = JSON.parse(await readFile(join(dir, ADAPTER_CONFIG_NAME), 'utf8')) as Record<string, unknown>;
  const fixture = JSON.parse(await readFile(join(adapterDir('tiny-llama', 'lora'), ADAPTER_CONFIG_NAME), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(written).sort(), Object.keys(fixture).sort());
  assert.deepEqual(
    { r: written['r'], alpha: written['lora_alpha'], targets: written['target_modules'], rs: written['use_rslora'], dora: written['use_dora'] },
    { r: 4, alpha: 8, targets: ['q_proj', 'v_proj'], rs: true, dora: true },
  );
  assert.deepEqual([written['peft_type'], written['task_type'], written['inference_mode']], ['LORA', 'CAUSAL_LM', true]);
  assert.match(await readFile(join(dir, ADAPTER_CONFIG_NAME), 'utf8'), /"lora_dropout": 0\.05,/);
});

test('an adapter changed by a training step saves and reloads with the same logits', async () => {
  const dir = await tempDir();
  const batch = await refBatch('tiny-llama');
  const trained = await PeftModel.fromPretrained(await loadBase('tiny-llama'), adapterDir('tiny-llama', 'dora'), { isTrainable: true });
  await (await trained.forward(batch)).loss!.backward();
  noGrad(() => {
    for (const t of trained.trainableParameters().values()) writeSlice(t, 0, 0, sub(t, mulScalar(t.grad!, 10)));
  });
  const logits = await (await trained.forward(batch)).logits.data();
  assert.notDeepEqual(logits, await refValues('tiny-llama', 'dora.logits'));
  await trained.savePretrained(dir);
  const reloaded = await PeftModel.fromPretrained(await loadBase('tiny-llama'), dir);
  await assertTensorClose((await reloaded.forward(batch)).logits, logits, 'reloaded logits', 1e-6);
});

test('savePretrained puts the adapter "default" in the folder and every other adapter in a subfolder of its name', async () => {
  const dir = await tempDir();
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-llama'), adapterDir('tiny-llama', 'lora'));
  await peft.loadAdapter(adapterDir('tiny-llama', 'lora_qv'), 'qv');
  await peft.savePretrained(dir);
  assert.deepEqual(await readFile(join(dir, ADAPTER_WEIGHTS_NAME)), await readFile(join(adapterDir('tiny-llama', 'lora'), ADAPTER_WEIGHTS_NAME)));
  assert.deepEqual(await readFile(join(dir, 'qv', ADAPTER_WEIGHTS_NAME)), await readFile(join(adapterDir('tiny-llama', 'lora_qv'), ADAPTER_WEIGHTS_NAME)));
  const only = await tempDir();
  await peft.savePretrained(only, { selectedAdapters: ['qv'] });
  await assert.rejects(readFile(join(only, ADAPTER_WEIGHTS_NAME)));
  await readFile(join(only, 'qv', ADAPTER_CONFIG_NAME));
});

test('loadAdapter({ dtype }) and castAdapter store the adapter in another dtype and leave the base alone', async () => {
  const base = await loadBase('tiny-llama');
  const peft = await PeftModel.fromPretrained(base, adapterDir('tiny-llama', 'lora'), { adapterName: 'half', dtype: 'bfloat16' });
  await peft.loadAdapter(adapterDir('tiny-llama', 'lora'), 'full');
  const layer = peft.model.model.layers.items[0]!.self_attn.q_proj as LoraLinear;
  const half = layer.lora_A.get('half')!.weight;
  const full = layer.lora_A.get('full')!.weight;
  assert.equal(half.dtype, 'bfloat16');
  assert.equal(full.dtype, 'float32');
  // The same values, rounded to bfloat16.
  const [h, f] = [await half.data(), await full.data()];
  for (let i = 0; i < f.length; i++) assert.ok(Math.abs(h[i]! - f[i]!) <= Math.abs(f[i]!) * 2 ** -8, `element ${i}`);
  peft.castAdapter('full', 'bfloat16');
  assert.equal(layer.lora_A.get('full')!.weight.dtype, 'bfloat16');
  assert.deepEqual(await layer.lora_A.get('full')!.weight.data(), h);
  assert.equal((layer.base_layer as Linear).weight.dtype, 'float32', 'the base weight keeps its dtype');
  assert.throws(() => peft.castAdapter('nope', 'bfloat16'), /nope/);
});
