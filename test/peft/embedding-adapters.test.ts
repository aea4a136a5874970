import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addScalar, writeSlice } from '../../src/ops/index.js';
import { getPeftModel, PeftError, PeftModel } from '../../src/peft/index.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { adapterDir, assertClose, assertTensorClose, loadBase, refBatch, refValues, tempDir, type BaseName } from './helpers.js';

// Cases of PEFT's tests/test_custom_models.py (Embedding), tests/test_trainable_tokens.py and tests/test_other.py
// (modules_to_save), in loraforge's terms; each test names the PEFT test it follows.
const PEFTX = 'tiny-llama-peftx' as BaseName;
const TIED: BaseName = 'tiny-qwen2';

async function logitsOf(peft: { forward(i: { inputIds: number[][] }): Promise<{ logits: Tensor }> }, inputIds: number[][]): Promise<Float32Array> {
  return (await (await peft.forward({ inputIds })).logits.data()) as Float32Array;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

test('LoRA on embed_tokens with init true leaves the output unchanged (test_custom_models: Embedding, init_lora_weights=True)', async () => {
  const { inputIds } = await refBatch(PEFTX);
  const peft = getPeftModel(await loadBase(PEFTX), { r: 4, targetModules: ['embed_tokens'] });
  await assertTensorClose((await peft.forward({ inputIds })).logits, await refValues(PEFTX, 'logits_base'), 'logits');
  const keys = [...peft.trainableParameters().keys()].sort();
  assert.deepEqual(keys, ['base_model.model.model.embed_tokens.lora_embedding_A', 'base_model.model.model.embed_tokens.lora_embedding_B']);
});

test('LoRA Embedding: merge gives the same output, unmerge and disable give the base back (test_custom_models: test_merge_layers, test_disable_adapters_with_merging)', async () => {
  const { inputIds } = await refBatch(PEFTX);
  const base = await refValues(PEFTX, 'logits_base');
  const peft = getPeftModel(await loadBase(PEFTX), { r: 4, loraAlpha: 8, targetModules: ['embed_tokens', 'q_proj'], initLoraWeights: false });
  const adapted = await logitsOf(peft, inputIds);
  assert.ok(maxDiff(adapted, base) > 1e-3, 'init false changes the output');
  peft.mergeAdapter();
  assertClose(await logitsOf(peft, inputIds), adapted, 'merged');
  peft.unmergeAdapter();
  assertClose(await peft.disableAdapter(() => logitsOf(peft, inputIds)), base, 'disabled');
  assertClose(await logitsOf(peft, inputIds), adapted, 'unmerged');
});

test('a new LoRA Embedding adapter saves and reloads with the same logits, its base table saved as PEFT does (test_custom_models: test_save_pretrained)', async () => {
  const { inputIds } = await refBatch(PEFTX);
  const dir = await tempDir();
  const peft = getPeftModel(await loadBase(PEFTX), { r: 4, targetModules: ['embed_tokens', 'v_proj'], initLoraWeights: false });
  const logits = await logitsOf(peft, inputIds);
  await peft.savePretrained(dir);
  const reloaded = await PeftModel.fromPretrained(await loadBase(PEFTX), dir);
  assertClose(await logitsOf(reloaded, inputIds), logits, 'reloaded', 1e-6);
});

test('trainable tokens: only the chosen rows change, and a fresh adapter is the identity (test_trainable_tokens: test_stand_alone_usage)', async () => {
  const batch = await refBatch(PEFTX);
  const peft = getPeftModel(await loadBase(PEFTX), { targetModules: ['q_proj'], trainableTokenIndices: [1, 2, 5] });
  await assertTensorClose((await peft.forward(batch)).logits, await refValues(PEFTX, 'logits_base'), 'fresh');
  const delta = peft.trainableParameters().get('base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta')!;
  assert.deepEqual(delta.shape, [3, 64]);
  noGrad(() => writeSlice(delta, 0, 0, addScalar(delta, 0.5)));
  const before = (await (await loadBase(PEFTX)).model.embed_tokens.weight.data()) as Float32Array;
  const merged = await peft.mergeAndUnload();
  const after = (await merged.model.embed_tokens.weight.data()) as Float32Array;
  for (let row = 0; row < 384; row++) {
    const d = maxDiff(after.subarray(row * 64, row * 64 + 64), before.subarray(row * 64, row * 64 + 64));
    if ([1, 2, 5].includes(row)) assert.ok(Math.abs(d - 0.5) < 1e-6, `row ${row} moved by 0.5`);
    else assert.equal(d, 0, `row ${row} unchanged`);
  }
});

test('trainable tokens on a tied model: the output head follows the trained rows (test_trainable_tokens: test_weight_tying_applied_when_model_is_tied)', async () => {
  const { inputIds } = await refBatch(TIED);
  const peft = getPeftModel(await loadBase(TIED), { targetModules: ['q_proj'], trainableTokenIndices: [3, 7] });
  const delta = [...peft.trainableParameters()].find(([k]) => k.endsWith('trainable_tokens_delta'))![1];
  noGrad(() => writeSlice(delta, 0, 0, addScalar(delta, 0.25)));
  const adapted = await logitsOf(peft, inputIds);
  const base = await peft.disableAdapter(() => logitsOf(peft, inputIds));
  const vocab = adapted.length / (inputIds.length * inputIds[0]!.length);
  // Column 3 of the tied head changes even at positions whose input is not token 3 or 7.
  let columnMoved = 0;
  for (let i = 0; i < adapted.length / vocab; i++) columnMoved = Math.max(columnMoved, Math.abs(adapted[i * vocab + 3]! - base[i * vocab + 3]!));
  assert.ok(columnMoved > 1e-4, 'the tied head reads the trained rows');
  const merged = await peft.mergeAndUnload();
  assertClose(await logitsOf(merged, inputIds), adapted, 'merged tied model');
});

test('two active trainable-token adapters with overlapping indices are refused (test_trainable_tokens: test_multiple_adapters_overlapping_token_indices_merging)', async () => {
  const { inputIds } = await refBatch(PEFTX);
  const peft = getPeftModel(await loadBase(PEFTX), { targetModules: ['q_proj'], trainableTokenIndices: [1, 2] });
  peft.addAdapter('other', { targetModules: ['v_proj'], trainableTokenIndices: [2, 9] });
  peft.setAdapter(['default', 'other']);
  await assert.rejects(peft.forward({ inputIds }), /Token indices of adapter other are already defined/);
});

test('trainable_token_indices on an embedding that target_modules adapts is refused (test_other: test_targeting_trainable_tokens_raises)', async () => {
  const model = await loadBase(PEFTX);
  assert.throws(() => getPeftModel(model, { targetModules: ['embed_tokens'], trainableTokenIndices: [0, 1] }), (e: Error) => e instanceof PeftError && /trainable_token_indices cannot be applied to model\.embed_tokens/.test(e.message));
});

test('trainable_token_indices on a layer that modules_to_save trains in full is refused (test_trainable_tokens: test_modules_to_save_excludes_trainable_tokens, test_stand_alone_raises_target_layer_not_found)', async () => {
  const model = await loadBase(PEFTX);
  assert.throws(() => getPeftModel(model, { targetModules: ['q_proj'], modulesToSave: ['embed_tokens'], trainableTokenIndices: { embed_tokens: [1] } }), /already marked to be trained fully/);
  const fresh = await loadBase(PEFTX);
  assert.throws(() => getPeftModel(fresh, { targetModules: ['q_proj'], trainableTokenIndices: { no_such_layer: [1] } }), /no such module/);
});

test('target_modules that only name a modules_to_save module are refused (test_other: test_targeting_module_to_save_raises)', async () => {
  const model = await loadBase(PEFTX);
  assert.throws(() => getPeftModel(model, { targetModules: ['lm_head'], modulesToSave: ['lm_head'] }), /No modules were targeted for adaptation/);
});

test('a modules_to_save module is copied, not LoRA-adapted, when target_modules names it too (test_other: test_nested_ignores_modules_to_save)', async () => {
  const peft = getPeftModel(await loadBase(PEFTX), { targetModules: ['q_proj', 'lm_head'], modulesToSave: ['lm_head'] });
  const keys = [...peft.trainableParameters().keys()];
  assert.ok(keys.includes('base_model.model.lm_head.weight'));
  assert.ok(!keys.some((k) => k.startsWith('base_model.model.lm_head.lora_')));
});

test('modules_to_save naming a layer list is refused (test_other: test_modules_to_save_targets_module_dict_raises)', async () => {
  const model = await loadBase(PEFTX);
  assert.throws(() => getPeftModel(model, { targetModules: ['q_proj'], modulesToSave: ['layers'] }), /modules_to_save/);
});

test('adapters with different modules_to_save and trainable tokens switch cleanly (test_other: test_load_multiple_adapters_different_modules_to_save)', async () => {
  const batch = await refBatch(PEFTX);
  const peft = await PeftModel.fromPretrained(await loadBase(PEFTX), adapterDir(PEFTX, 'save_head'), { adapterName: 'save_head' });
  await peft.loadAdapter(adapterDir(PEFTX, 'tokens'), 'tokens');
  await peft.loadAdapter(adapterDir(PEFTX, 'patterns'), 'patterns');
  for (const name of ['tokens', 'save_head', 'patterns', 'tokens']) {
    peft.setAdapter(name, { inferenceMode: true });
    await assertTensorClose((await peft.forward(batch)).logits, await refValues(PEFTX, `${name}.logits`), `${name}.logits`);
  }
  const rows = ['tokens', 'save_head', 'patterns'];
  const mixed = await logitsOf({ forward: (i) => peft.forward({ ...i, adapterNames: rows }) }, batch.inputIds);
  const per = mixed.length / 3;
  for (const [i, name] of rows.entries()) {
    assertClose(mixed.subarray(i * per, (i + 1) * per), (await refValues(PEFTX, `${name}.logits`)).subarray(i * per, (i + 1) * per), `mixed row ${i} (${name})`);
  }
});
