import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AutoModelForCausalLM, getPeftModel, PeftModel } from '../../src/index.js';
import { TEST_DEVICE } from '../helpers/device.js';
import { fixturePath } from '../helpers/fixtures.js';
import { adapterDir, assertTensorClose, refBatch, refInts, refValues, tempDir } from './helpers.js';

test('the issue\'s public API: load two adapters, mix them per row, train, save, merge and generate', async () => {
  const { inputIds, labels } = await refBatch('tiny-llama');
  const model = await AutoModelForCausalLM.fromPretrained(fixturePath('tiny-llama'), { dtype: 'float32', device: TEST_DEVICE });
  const peft = await PeftModel.fromPretrained(model, adapterDir('tiny-llama', 'lora'), { adapterName: 'a', isTrainable: true });
  await peft.loadAdapter(adapterDir('tiny-llama', 'lora_qv'), 'b');
  peft.setAdapter('a');
  const mixed = await peft.forward({ inputIds, labels, adapterNames: ['a', 'b', '__base__'] });
  await assertTensorClose(mixed.logits, await refValues('tiny-llama', 'mixed.logits'), 'mixed.logits');
  await mixed.loss!.backward();
  assert.ok([...peft.trainableParameters().values()].every((t) => t.grad !== null));
  const dir = await tempDir();
  await peft.savePretrained(dir);
  const merged = await peft.mergeAndUnload();
  await assertTensorClose((await merged.forward({ inputIds })).logits, await refValues('tiny-llama', 'lora.merged_logits'), 'lora.merged_logits');
  const [sequence] = await merged.generate([inputIds[0]!.slice(0, 8)], { maxNewTokens: 16, doSample: false });
  assert.deepEqual(sequence!.slice(8), await refInts('tiny-llama', 'lora.generate'));

  const fresh = getPeftModel(await AutoModelForCausalLM.fromPretrained(fixturePath('tiny-llama'), { dtype: 'float32', device: TEST_DEVICE }), { r: 8, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'] });
  assert.equal(fresh.trainableParameters().size, 8);
});
