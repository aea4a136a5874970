import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatTrainableParameters, getPeftModel, PeftModel } from '../../src/peft/index.js';
import { adapterDir, assertTensorClose, loadBase, refBatch, refValues, tempDir } from './helpers.js';

test('trainableParameters lists the active adapter\'s tensors under their adapter_model.safetensors keys', async () => {
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-llama'), adapterDir('tiny-llama', 'dora'), { isTrainable: true });
  const keys = [...peft.trainableParameters().keys()];
  assert.equal(keys.length, 18);
  assert.ok(keys.includes('base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector'));
  assert.ok(keys.includes('base_model.model.model.layers.1.mlp.down_proj.lora_B.weight'));
});

test('an adapter loaded without isTrainable is frozen', async () => {
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-llama'), adapterDir('tiny-llama', 'lora'));
  assert.equal(peft.trainableParameters().size, 0);
  assert.deepEqual(peft.getNbTrainableParameters(), { trainable: 0, all: 153_408 });
});

test('parameter counts follow PEFT: every LoRA tensor of a new adapter trains, the base model does not', async () => {
  const peft = getPeftModel(await loadBase('tiny-llama'), { r: 8, targetModules: ['q_proj', 'v_proj'] });
  // Per layer: q (8x64 + 64x8) + v (8x64 + 32x8) = 1792; the base model has 135,488 parameters.
  assert.deepEqual(peft.getNbTrainableParameters(), { trainable: 3584, all: 135_488 + 3584 });
  assert.equal(formatTrainableParameters(peft.getNbTrainableParameters()), 'trainable params: 3,584 || all params: 139,072 || trainable%: 2.5771');
});

test('printTrainableParameters uses PEFT\'s format', () => {
  assert.equal(formatTrainableParameters({ trainable: 1234, all: 5678 }), 'trainable params: 1,234 || all params: 5,678 || trainable%: 21.7330');
});

test('addAdapter adds an inactive, frozen adapter; setAdapter activates it and makes it trainable', async () => {
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-llama'), adapterDir('tiny-llama', 'lora'));
  peft.addAdapter('fresh', { r: 2, targetModules: ['k_proj'] });
  assert.deepEqual(peft.activeAdapters, ['default']);
  assert.equal(peft.trainableParameters().size, 0);
  peft.setAdapter('fresh');
  assert.deepEqual([...peft.trainableParameters().keys()].map((k) => k.split('.').slice(-4).join('.')), [
    'self_attn.k_proj.lora_A.weight',
    'self_attn.k_proj.lora_B.weight',
    'self_attn.k_proj.lora_A.weight',
    'self_attn.k_proj.lora_B.weight',
  ]);
});

test('setAdapter switches which adapter computes the output', async () => {
  const batch = await refBatch('tiny-llama');
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-llama'), adapterDir('tiny-llama', 'lora'));
  await peft.loadAdapter(adapterDir('tiny-llama', 'rslora'), 'rs');
  await assertTensorClose((await peft.forward(batch)).logits, await refValues('tiny-llama', 'lora.logits'), 'lora.logits');
  peft.setAdapter('rs');
  await assertTensorClose((await peft.forward(batch)).logits, await refValues('tiny-llama', 'rslora.logits'), 'rslora.logits');
});

test('disableAdapter runs the base model alone and restores the adapter afterwards', async () => {
  const batch = await refBatch('tiny-llama');
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-llama'), adapterDir('tiny-llama', 'dora'));
  const disabled = await peft.disableAdapter(async () => (await peft.forward(batch)).logits);
  await assertTensorClose(disabled, await refValues('tiny-llama', 'logits_base'), 'logits_base');
  await assertTensorClose((await peft.forward(batch)).logits, await refValues('tiny-llama', 'dora.logits'), 'dora.logits');
});

test('deleteAdapter removes an adapter; when it was active the next one takes over', async () => {
  const batch = await refBatch('tiny-llama');
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-llama'), adapterDir('tiny-llama', 'lora'));
  await peft.loadAdapter(adapterDir('tiny-llama', 'lora_qv'), 'qv');
  peft.deleteAdapter('default');
  assert.deepEqual([...peft.peftConfig.keys()], ['qv']);
  assert.deepEqual(peft.activeAdapters, ['qv']);
  assert.ok(![...peft.namedParameters()].some(([n]) => n.includes('.default.')));
  await assertTensorClose((await peft.forward(batch)).logits, await refValues('tiny-llama', 'lora_qv.logits'), 'lora_qv.logits');
});

test('several active adapters add their updates', async () => {
  const batch = await refBatch('tiny-llama');
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-llama'), adapterDir('tiny-llama', 'lora'), { adapterName: 'a' });
  await peft.loadAdapter(adapterDir('tiny-llama', 'lora_qv'), 'b');
  peft.setAdapter(['a', 'b']);
  const both = await (await peft.forward(batch)).logits.data();
  await peft.addWeightedAdapter(['a', 'b'], [1, 1], 'ab', 'cat');
  peft.setAdapter('ab');
  await assertTensorClose((await peft.forward(batch)).logits, both, 'cat of a and b', 1e-5);
});

test('modulesToSave trains a full copy of lm_head and saves it under PEFT\'s key', async () => {
  const dir = await tempDir();
  const batch = await refBatch('tiny-llama');
  const peft = getPeftModel(await loadBase('tiny-llama'), { targetModules: ['q_proj'], modulesToSave: ['lm_head'] });
  const params = peft.trainableParameters();
  assert.ok(params.has('base_model.model.lm_head.weight'));
  assert.ok([...peft.namedParameters()].some(([n]) => n === 'base_model.model.lm_head.modules_to_save.default.weight'));
  const { loss } = await peft.forward(batch);
  await loss!.backward();
  assert.ok(params.get('base_model.model.lm_head.weight')!.grad);
  await peft.savePretrained(dir);
  const reloaded = await PeftModel.fromPretrained(await loadBase('tiny-llama'), dir);
  assert.deepEqual(await reloaded.trainableParameters().size, 0);
  await assertTensorClose((await reloaded.forward(batch)).logits, await refValues('tiny-llama', 'logits_base'), 'logits with the unchanged copy');
});

test('bias "all" trains and saves the base biases under PEFT\'s keys', async () => {
  const peft = getPeftModel(await loadBase('tiny-qwen2'), { targetModules: ['q_proj'], bias: 'all' });
  const keys = [...peft.trainableParameters().keys()].filter((k) => k.endsWith('.bias'));
  assert.deepEqual(keys.slice(0, 3), [
    'base_model.model.model.layers.0.self_attn.q_proj.base_layer.bias',
    'base_model.model.model.layers.0.self_attn.k_proj.bias',
    'base_model.model.model.layers.0.self_attn.v_proj.bias',
  ]);
  assert.equal(keys.length, 6);
});
