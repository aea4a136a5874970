import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getPeftModel, LoraLinear, type PeftModel } from '../../src/peft/index.js';
import { minimalSuffixes } from '../../src/peft/targets.js';
import { loadBase } from './helpers.js';

/** Module paths that carry adapter `name`, from PEFT's parameter names. */
function adapted(peft: PeftModel, name = 'default'): string[] {
  const suffix = `.lora_A.${name}.weight`;
  return [...peft.namedParameters()].map(([n]) => n).filter((n) => n.endsWith(suffix)).map((n) => n.slice('base_model.model.'.length, -suffix.length));
}

test('parameters are named as in PEFT: base_model.model.<path>.lora_A.<adapter>.weight next to base_layer', async () => {
  const peft = getPeftModel(await loadBase('tiny-llama'), { targetModules: ['q_proj'] });
  const names = [...peft.namedParameters()].map(([n]) => n).filter((n) => n.startsWith('base_model.model.model.layers.0.self_attn.q_proj.'));
  assert.deepEqual(names, [
    'base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight',
    'base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight',
    'base_model.model.model.layers.0.self_attn.q_proj.lora_B.default.weight',
  ]);
});

test('a list of target names matches module paths by their last components', async () => {
  const peft = getPeftModel(await loadBase('tiny-llama'), { targetModules: ['self_attn.v_proj', 'down_proj'] });
  assert.deepEqual(adapted(peft), ['model.layers.0.self_attn.v_proj', 'model.layers.0.mlp.down_proj', 'model.layers.1.self_attn.v_proj', 'model.layers.1.mlp.down_proj']);
});

test('a target string is a regex that must match the whole module path', async () => {
  const peft = getPeftModel(await loadBase('tiny-llama'), { targetModules: String.raw`model\.layers\.1\.self_attn\.(q|k)_proj` });
  assert.deepEqual(adapted(peft), ['model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.k_proj']);
});

test('"all-linear" adapts every linear layer except the output head, and saves their paths as target_modules', async () => {
  const peft = getPeftModel(await loadBase('tiny-llama'), { targetModules: 'all-linear' });
  const paths = adapted(peft);
  assert.equal(paths.length, 14);
  assert.ok(!paths.includes('lm_head'));
  assert.deepEqual([...(peft.peftConfig.get('default')!.targetModules as string[])].sort(), [...paths].sort());
});

test('no target_modules means PEFT\'s default for the architecture: q_proj and v_proj', async () => {
  const peft = getPeftModel(await loadBase('tiny-qwen2'), {});
  assert.deepEqual(adapted(peft).map((p) => p.split('.').pop()), ['q_proj', 'v_proj', 'q_proj', 'v_proj']);
});

test('layersToTransform keeps only the listed layer indices', async () => {
  const peft = getPeftModel(await loadBase('tiny-llama'), { targetModules: ['q_proj', 'o_proj'], layersToTransform: [1] });
  assert.deepEqual(adapted(peft), ['model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.o_proj']);
});

test('excludeModules removes modules the targets would match', async () => {
  const peft = getPeftModel(await loadBase('tiny-llama'), { targetModules: ['q_proj'], excludeModules: ['layers.0.self_attn.q_proj'] });
  assert.deepEqual(adapted(peft), ['model.layers.1.self_attn.q_proj']);
});

test('rankPattern and alphaPattern set r and alpha per module by regex on the end of the path', async () => {
  const peft = getPeftModel(await loadBase('tiny-llama'), {
    r: 8,
    loraAlpha: 16,
    targetModules: ['q_proj', 'v_proj'],
    rankPattern: { 'layers.0.self_attn.q_proj': 2 },
    alphaPattern: { v_proj: 4 },
  });
  const layer = (path: string) => peft.model.getSubmodule(path) as LoraLinear;
  assert.deepEqual(layer('model.layers.0.self_attn.q_proj').settingsOf('default'), { r: 2, alpha: 16, scaling: 8, dropout: 0, useDora: false, loraBias: false });
  assert.equal(layer('model.layers.1.self_attn.q_proj').settingsOf('default')!.r, 8);
  assert.deepEqual(layer('model.layers.1.self_attn.v_proj').settingsOf('default')!.scaling, 0.5);
  assert.deepEqual(layer('model.layers.0.self_attn.q_proj').lora_A.get('default')!.weight.shape, [2, 64]);
});

test('useRslora scales by alpha / sqrt(r)', async () => {
  const peft = getPeftModel(await loadBase('tiny-llama'), { r: 4, loraAlpha: 16, useRslora: true, targetModules: ['q_proj'] });
  assert.equal((peft.model.getSubmodule('model.layers.0.self_attn.q_proj') as LoraLinear).settingsOf('default')!.scaling, 8);
});

test('long target lists condense to the shortest distinguishing suffixes (PEFT\'s _find_minimal_target_modules)', () => {
  const targets = Array.from({ length: 100 }, (_, i) => [`model.decoder.layers.${i}.self_attn.q_proj`, `model.decoder.layers.${i}.self_attn.v_proj`]).flat();
  const others = Array.from({ length: 100 }, (_, i) => `model.encoder.layers.${i}.self_attn.k_proj`);
  assert.deepEqual(minimalSuffixes(targets, others).sort(), ['q_proj', 'v_proj']);
  assert.deepEqual(minimalSuffixes(['a.q_proj', 'b.q_proj'], ['c.q_proj']).sort(), ['a.q_proj', 'b.q_proj']);
});
