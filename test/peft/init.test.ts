import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getPeftModel, type LoraLinear } from '../../src/peft/index.js';
import { assertTensorClose, loadBase, refBatch, refValues } from './helpers.js';

const qProj = (model: { getSubmodule(path: string): unknown }) => model.getSubmodule('model.layers.0.self_attn.q_proj') as LoraLinear;

test('a new adapter starts with B = 0, so the model computes exactly what the base model computes', async () => {
  const peft = getPeftModel(await loadBase('tiny-llama'), { targetModules: 'all-linear', useDora: true });
  await assertTensorClose((await peft.forward(await refBatch('tiny-llama'))).logits, await refValues('tiny-llama', 'logits_base'), 'logits_base');
});

test('initLoraWeights true draws A from kaiming-uniform(a=sqrt(5)): U(-1/sqrt(in), 1/sqrt(in))', async () => {
  const a = await qProj(getPeftModel(await loadBase('tiny-llama'), { r: 16, targetModules: ['q_proj'] }).model).lora_A.get('default')!.weight.data();
  const bound = 1 / Math.sqrt(64);
  assert.ok(a.every((v) => Math.abs(v) <= bound));
  assert.ok(Math.max(...a) > 0.9 * bound && Math.min(...a) < -0.9 * bound);
});

test('initLoraWeights "gaussian" draws A from N(0, std 1/r)', async () => {
  const a = await qProj(getPeftModel(await loadBase('tiny-llama'), { r: 16, initLoraWeights: 'gaussian', targetModules: ['q_proj'] }).model).lora_A.get('default')!.weight.data();
  const std = Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
  assert.ok(Math.abs(std - 1 / 16) < 0.1 / 16, `std ${std}`);
});

test('initialisation is reproducible from the seed', async () => {
  const draw = async (seed: number) => qProj(getPeftModel(await loadBase('tiny-llama'), { seed, targetModules: ['q_proj'] }).model).lora_A.get('default')!.weight.data();
  assert.deepEqual(await draw(7), await draw(7));
  assert.notDeepEqual(await draw(7), await draw(8));
});

test('dropout acts in training mode only, and reproducibly from the seed', async () => {
  const batch = await refBatch('tiny-llama');
  const logitsOf = async (train: boolean) => {
    const peft = getPeftModel(await loadBase('tiny-llama'), { seed: 3, loraDropout: 0.5, initLoraWeights: false, targetModules: ['q_proj'] });
    return (await peft.train(train).forward(batch)).logits.data();
  };
  const [evalA, evalB, trainA, trainB] = [await logitsOf(false), await logitsOf(false), await logitsOf(true), await logitsOf(true)];
  assert.deepEqual(evalA, evalB);
  assert.deepEqual(trainA, trainB);
  assert.notDeepEqual(trainA, evalA);
});
