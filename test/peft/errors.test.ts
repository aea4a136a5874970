import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ADAPTER_CONFIG_NAME, getPeftModel, PeftError, PeftModel } from '../../src/peft/index.js';
import { adapterDir, loadBase, tempDir } from './helpers.js';

test('an adapter whose shapes do not fit the base names the module and both shapes, and leaves no adapter behind', async () => {
  const peft = getPeftModel(await loadBase('tiny-qwen2'), { targetModules: ['q_proj'] });
  await assert.rejects(
    peft.loadAdapter(adapterDir('tiny-llama', 'lora'), 'llama'),
    (err: Error) => err instanceof PeftError && /self_attn\.k_proj/.test(err.message) && /\[32, 8\]/.test(err.message) && /\[16, 8\]/.test(err.message),
  );
  assert.deepEqual([...peft.peftConfig.keys()], ['default']);
  assert.ok(![...peft.namedParameters()].some(([name]) => name.includes('.llama.')));
});

test('target_modules that match nothing are refused with the names of the linear modules that exist', async () => {
  const model = await loadBase('tiny-llama');
  assert.throws(
    () => getPeftModel(model, { targetModules: ['qkv_proj'] }),
    (err: Error) => err instanceof PeftError && /qkv_proj/.test(err.message) && /q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj/.test(err.message),
  );
});

test('a target that is not a linear layer is refused', async () => {
  const model = await loadBase('tiny-llama');
  assert.throws(() => getPeftModel(model, { targetModules: ['mlp'] }), (err: Error) => err instanceof PeftError && /model\.layers\.0\.mlp \(DecoderMLP\)/.test(err.message));
});

test('an unknown adapter name in adapterNames or setAdapter is refused with the loaded names', async () => {
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-llama'), adapterDir('tiny-llama', 'lora_qv'));
  assert.throws(() => peft.run({ inputIds: [[1, 2, 3]], adapterNames: ['nope'] }), (err: Error) => err instanceof PeftError && /"nope"/.test(err.message) && /"default"/.test(err.message));
  assert.throws(() => peft.setAdapter('nope'), /No adapter named "nope" is loaded; loaded adapters: "default"/);
  await assert.rejects(peft.generate([[1, 2]], { adapterNames: ['other'], maxNewTokens: 1 }), PeftError);
});

test('a folder without adapter_config.json is refused', async () => {
  const dir = await tempDir();
  await assert.rejects(PeftModel.fromPretrained(await loadBase('tiny-llama'), dir), (err: Error) => err instanceof PeftError && err.message.includes(`has no ${ADAPTER_CONFIG_NAME}`));
});

test('an adapter_config.json of another PEFT method is refused', async () => {
  const dir = await tempDir();
  await writeFile(join(dir, ADAPTER_CONFIG_NAME), JSON.stringify({ peft_type: 'IA3', target_modules: ['q_proj'] }));
  await assert.rejects(PeftModel.fromPretrained(await loadBase('tiny-llama'), dir), (err: Error) => err instanceof PeftError && /"IA3"/.test(err.message) && /"LORA"/.test(err.message));
});

test('an adapter folder without adapter_model.safetensors is refused', async () => {
  const dir = await tempDir();
  await copyFile(join(adapterDir('tiny-llama', 'lora'), ADAPTER_CONFIG_NAME), join(dir, ADAPTER_CONFIG_NAME));
  await assert.rejects(PeftModel.fromPretrained(await loadBase('tiny-llama'), dir), /has no adapter_model\.safetensors/);
});

test('an adapter using a LoRA variant loraforge does not implement is refused', async () => {
  const dir = await tempDir();
  await writeFile(join(dir, ADAPTER_CONFIG_NAME), JSON.stringify({ peft_type: 'LORA', target_modules: ['q_proj'], use_qalora: true }));
  await assert.rejects(PeftModel.fromPretrained(await loadBase('tiny-llama'), dir), /"use_qalora"/);
});

test('loading a second adapter under a name in use is refused', async () => {
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-llama'), adapterDir('tiny-llama', 'lora_qv'));
  await assert.rejects(peft.loadAdapter(adapterDir('tiny-llama', 'lora'), 'default'), /already loaded/);
});
