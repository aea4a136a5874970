import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { openCheckpoint } from '../../src/io/checkpoint.js';
import { Linear } from '../../src/nn/layers.js';
import { full, writeSlice } from '../../src/ops/index.js';
import { getPeftModel, LoraLinear, PeftModel } from '../../src/peft/index.js';
import { fixturePath } from '../helpers/fixtures.js';
import { adapterDir, assertClose, assertTensorClose, loadBase, loadModel, maxError, refBatch, refValues, tempDir, VARIANTS, type BaseName } from './helpers.js';

async function baseWeights(peft: PeftModel): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, t] of peft.namedParameters()) if (name.includes('.base_layer.')) out.set(name, await t.data());
  return out;
}

for (const base of Object.keys(VARIANTS) as BaseName[]) {
  for (const variant of VARIANTS[base]) {
    test(`${base} ${variant}: merge then unmerge restores the base weights within 1e-6 relative`, async () => {
      const peft = await PeftModel.fromPretrained(await loadBase(base), adapterDir(base, variant));
      const before = await baseWeights(peft);
      peft.mergeAdapter();
      const merged = await baseWeights(peft);
      assert.ok([...before].some(([name, w]) => maxError(merged.get(name)!, w).abs > 1e-3), 'merging changed no weight');
      peft.unmergeAdapter();
      for (const [name, w] of await baseWeights(peft)) {
        const { abs } = maxError(w, before.get(name)!);
        const scale = before.get(name)!.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        assert.ok(abs <= 1e-6 * scale, `${name}: max abs error ${abs} after unmerge, scale ${scale}`);
      }
      await assertTensorClose((await peft.forward(await refBatch(base))).logits, await refValues(base, `${variant}.logits`), `${variant}.logits after unmerge`);
    });

    test(`${base} ${variant}: the exported merged checkpoint reloads and reproduces PEFT's merged logits`, async () => {
      const dir = await tempDir();
      const peft = await PeftModel.fromPretrained(await loadBase(base), adapterDir(base, variant));
      await peft.saveMergedPretrained(dir, { copyFilesFrom: fixturePath(base) });
      const reloaded = await loadModel(dir);
      const { inputIds } = await refBatch(base);
      await assertTensorClose((await reloaded.forward({ inputIds })).logits, await refValues(base, `${variant}.merged_logits`), `${variant}.merged_logits`);
      await assertTensorClose((await peft.forward({ inputIds })).logits, await refValues(base, `${variant}.logits`), 'the PeftModel after export');
    });
  }
}

test('the exported checkpoint holds transformers-named weights, config.json and the tokenizer files', async () => {
  const dir = await tempDir();
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-qwen2'), adapterDir('tiny-qwen2', 'lora'));
  await peft.saveMergedPretrained(dir, { copyFilesFrom: fixturePath('tiny-qwen2') });
  assert.deepEqual((await readdir(dir)).sort(), ['chat_template.jinja', 'config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  const exported = await openCheckpoint(dir);
  const original = await openCheckpoint(fixturePath('tiny-qwen2'));
  assert.deepEqual(exported.names().sort(), original.names().sort());
  await Promise.all([exported.close(), original.close()]);
});

test('mergeAndUnload returns a plain model whose projections are Linear layers again', async () => {
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-llama'), adapterDir('tiny-llama', 'lora'));
  const model = await peft.mergeAndUnload();
  const layers = [...model.namedModules()].map(([, m]) => m);
  assert.ok(!layers.some((m) => m instanceof LoraLinear));
  assert.ok(model.model.layers.items[0]!.self_attn.q_proj instanceof Linear);
  assert.ok(![...model.namedParameters()].some(([name]) => name.includes('lora')));
  assert.throws(() => peft.run({ inputIds: [[1, 2]] }), /mergeAndUnload/);
});

test('a merged model computes what the unmerged adapter computes', async () => {
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-llama'), adapterDir('tiny-llama', 'dora'));
  const { inputIds } = await refBatch('tiny-llama');
  peft.mergeAdapter();
  await assertTensorClose((await peft.forward({ inputIds })).logits, await refValues('tiny-llama', 'dora.logits'), 'merged dora logits');
  assert.throws(() => peft.run({ inputIds, adapterNames: ['default', 'default', 'default'] }), /unmergeAdapter/);
});

test('lora_bias: B\'s bias joins the output, merges into the base bias and unmerges out of it', async () => {
  const { inputIds } = await refBatch('tiny-qwen2');
  const peft = getPeftModel(await loadBase('tiny-qwen2'), { targetModules: ['q_proj'], loraBias: true, initLoraWeights: false });
  const layer = peft.model.getSubmodule('model.layers.0.self_attn.q_proj') as LoraLinear;
  const loraBias = layer.lora_B.get('default')!.bias!;
  writeSlice(loraBias, 0, 0, full([64], 0.25, { device: loraBias.device }));
  const baseBias = await (layer.base_layer as Linear).bias!.data();
  const unmerged = await (await peft.forward({ inputIds })).logits.data();
  peft.mergeAdapter();
  await assertTensorClose((await peft.forward({ inputIds })).logits, unmerged, 'merged logits', 1e-5);
  assertClose(await (layer.base_layer as Linear).bias!.data(), baseBias.map((b) => b + 0.25 * layer.settingsOf('default')!.scaling), 'merged bias', 1e-6);
  peft.unmergeAdapter();
  assertClose(await (layer.base_layer as Linear).bias!.data(), baseBias, 'restored bias', 1e-6);
});
