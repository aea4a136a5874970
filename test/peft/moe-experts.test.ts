/**
 * LoRA on expert parameters (PEFT's target_parameters) beyond the reference files: new adapters, their saved
 * layout, a mixed batch with expert adapters (which PEFT 0.21 cannot run: each row is checked against the
 * single-adapter forward), the frozen router, and the configurations that are refused.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { BASE_ADAPTER_NAME, getPeftModel, PeftModel } from '../../src/peft/index.js';
import { adapterDir, assertClose, assertTensorClose, loadBase, refBatch, refValues, tempDir } from './helpers.js';

const EXPERTS = ['experts.gate_up_proj', 'experts.down_proj'];

test('a new expert adapter starts at B = 0, leaves the logits unchanged, and trains A and B but never the router', async () => {
  const peft = getPeftModel(await loadBase('tiny-qwen3moe'), { r: 2, loraAlpha: 4, targetParameters: EXPERTS });
  const { inputIds, labels } = await refBatch('tiny-qwen3moe');
  const out = await peft.forward({ inputIds, labels });
  await assertTensorClose(out.logits, await refValues('tiny-qwen3moe', 'logits_base'), 'logits');
  assert.deepEqual([...peft.trainableParameters().keys()].filter((k) => k.includes('layers.0.')), [
    'base_model.model.model.layers.0.mlp.experts.base_layer.lora_A.weight',
    'base_model.model.model.layers.0.mlp.experts.base_layer.lora_B.weight',
    'base_model.model.model.layers.0.mlp.experts.lora_A.weight',
    'base_model.model.model.layers.0.mlp.experts.lora_B.weight',
  ]);
  await out.loss!.backward();
  const router = [...peft.model.namedParameters()].find(([n]) => n === 'model.layers.0.mlp.gate.weight')![1];
  assert.equal(router.requiresGrad, false);
  assert.equal(router.grad, null);
  const a = peft.trainableParameters().get('base_model.model.model.layers.0.mlp.experts.base_layer.lora_B.weight')!;
  assert.deepEqual(a.shape, [96, 8]);
  assert.ok((await a.grad!.data()).some((v) => v !== 0), 'lora_B of gate_up_proj gets a gradient');
});

test('an expert adapter saves PEFT\'s nested keys, rank x experts stacked, and target_parameters in adapter_config.json', async () => {
  const dir = await tempDir();
  const peft = getPeftModel(await loadBase('tiny-mixtral'), { r: 2, loraAlpha: 4, targetModules: ['q_proj'], targetParameters: EXPERTS, initLoraWeights: false });
  await peft.savePretrained(dir);
  const config = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(config['target_parameters'], EXPERTS);
  const file = await SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
  const shapes = Object.fromEntries(file.names().filter((n) => n.includes('layers.1.mlp')).map((n) => [n, file.info(n).shape]));
  await file.close();
  assert.deepEqual(shapes, {
    'base_model.model.model.layers.1.mlp.experts.base_layer.lora_A.weight': [8, 64],
    'base_model.model.model.layers.1.mlp.experts.base_layer.lora_B.weight': [320, 8],
    'base_model.model.model.layers.1.mlp.experts.lora_A.weight': [8, 160],
    'base_model.model.model.layers.1.mlp.experts.lora_B.weight': [64, 8],
  });
  const { inputIds } = await refBatch('tiny-mixtral');
  const reloaded = await PeftModel.fromPretrained(await loadBase('tiny-mixtral'), dir);
  await assertTensorClose((await reloaded.forward({ inputIds })).logits, await (await peft.forward({ inputIds })).logits.data(), 'reloaded logits');
});

for (const base of ['tiny-mixtral', 'tiny-gptoss'] as const) {
  test(`${base}: a mixed batch with expert adapters gives every row the logits of its adapter alone`, async () => {
    const peft = await PeftModel.fromPretrained(await loadBase(base), adapterDir(base, 'lora_experts'), { adapterName: 'experts' });
    await peft.loadAdapter(adapterDir(base, 'lora'), 'attention');
    const { inputIds } = await refBatch(base);
    const { logits } = await peft.forward({ inputIds, adapterNames: ['experts', 'attention', BASE_ADAPTER_NAME] });
    const mixed = await logits.data();
    const row = 24 * 384;
    assertClose(mixed.subarray(0, row), (await refValues(base, 'lora_experts.logits')).subarray(0, row), 'row 0 (experts)');
    assertClose(mixed.subarray(row, 2 * row), (await refValues(base, 'lora.logits')).subarray(row, 2 * row), 'row 1 (attention)');
    assertClose(mixed.subarray(2 * row), (await refValues(base, 'logits_base')).subarray(2 * row), 'row 2 (base)');
  });
}

test('expert adapters refuse what PEFT\'s ParamWrapper refuses, and parameters they do not cover', async () => {
  const model = await loadBase('tiny-gptoss');
  assert.throws(() => getPeftModel(model, { targetParameters: EXPERTS, loraDropout: 0.1 }), {
    message: 'loraDropout 0.1 cannot be used with targetParameters (PEFT\'s ParamWrapper cannot apply dropout to the input of a parameter); set loraDropout to 0.',
  });
  assert.throws(() => getPeftModel(model, { targetParameters: ['experts.up_proj'] }), {
    message: 'target_parameters ["experts.up_proj"] match no parameter of the base model; a mixture-of-experts model\'s are experts.gate_up_proj and experts.down_proj.',
  });
  assert.throws(() => getPeftModel(model, { targetParameters: ['experts.gate_up_proj_bias'] }), {
    message: 'target_parameters matched model.layers.0.mlp.experts.gate_up_proj_bias, but loraforge adapts only the experts.gate_up_proj and experts.down_proj parameters of a mixture-of-experts layer; target those.',
  });
});

test('in a mixed batch each expert adapter\'s gradient comes from its own rows: two copies of one adapter sum to its whole-batch gradient', async () => {
  const base = 'tiny-qwen3moe';
  const { inputIds, labels } = await refBatch(base);
  const whole = await PeftModel.fromPretrained(await loadBase(base), adapterDir(base, 'lora_experts'), { adapterName: 'a', isTrainable: true });
  await (await whole.forward({ inputIds, labels })).loss!.backward();
  const split = await PeftModel.fromPretrained(await loadBase(base), adapterDir(base, 'lora_experts'), { adapterName: 'a', isTrainable: true });
  await split.loadAdapter(adapterDir(base, 'lora_experts'), 'b', { isTrainable: true });
  // Only the active adapter trains (PEFT's rule); b's factors are made trainable here to see their gradient.
  for (const [name, p] of split.model.namedParameters()) if (name.includes('.b.weight')) p.requiresGrad_();
  const out = await split.forward({ inputIds, labels, adapterNames: ['a', 'b', 'a'] });
  await assertTensorClose(out.logits, await refValues(base, 'lora_experts.logits'), 'mixed logits');
  await out.loss!.backward();
  // gate_up_proj's A of layer 1: PEFT's key for the active adapter, the module path per adapter name.
  const key = 'base_model.model.model.layers.1.mlp.experts.base_layer.lora_A.weight';
  const params = new Map(split.model.namedParameters());
  const [ga, gb] = await Promise.all(['a', 'b'].map((n) => params.get(`model.layers.1.mlp.experts.gate_up_proj.lora_A.${n}.weight`)!.grad!.data()));
  assert.ok(ga!.some((v) => v !== 0) && gb!.some((v) => v !== 0), 'both copies get a gradient');
  assertClose(ga!.map((v, i) => v + gb![i]!), await whole.trainableParameters().get(key)!.grad!.data(), 'a + b = the whole batch\'s gradient');
});
