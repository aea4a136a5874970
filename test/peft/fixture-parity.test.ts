import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PeftModel } from '../../src/peft/index.js';
import { adamwFiveSteps, adapterDir, assertClose, assertTensorClose, loadBase, refBatch, refInts, refNames, refValues, VARIANTS, type BaseName } from './helpers.js';

/** PEFT names DoRA's magnitude parameter `...lora_magnitude_vector.weight`; its file key has no ".weight". */
const gradName = (key: string) => (key.endsWith('.lora_magnitude_vector') ? `${key}.weight` : key);

for (const base of Object.keys(VARIANTS) as BaseName[]) {
  for (const variant of VARIANTS[base]) {
    test(`${base} ${variant}: logits and loss match PEFT`, async () => {
      const peft = await PeftModel.fromPretrained(await loadBase(base), adapterDir(base, variant));
      const out = await peft.forward(await refBatch(base));
      await assertTensorClose(out.logits, await refValues(base, `${variant}.logits`), `${variant}.logits`);
      assertClose([await out.loss!.item()], await refValues(base, `${variant}.loss`), `${variant}.loss`);
    });

    test(`${base} ${variant}: the gradient of the loss w.r.t. every adapter tensor matches PEFT`, async () => {
      const peft = await PeftModel.fromPretrained(await loadBase(base), adapterDir(base, variant), { isTrainable: true });
      const { loss } = await peft.forward(await refBatch(base));
      await loss!.backward();
      const params = peft.trainableParameters();
      assert.ok(params.size > 0);
      for (const [key, t] of params) {
        assert.ok(t.grad, `${key} has no gradient`);
        await assertTensorClose(t.grad, await refValues(base, `${variant}.grad.${gradName(key)}`), `${variant}.grad.${key}`);
      }
    });

    test(`${base} ${variant}: mergeAndUnload gives PEFT's merged weights and logits`, async () => {
      const peft = await PeftModel.fromPretrained(await loadBase(base), adapterDir(base, variant));
      const merged = await peft.mergeAndUnload();
      const names = (await refNames(base, `${variant}.merged.`)).map((n) => n.slice(`${variant}.merged.`.length));
      assert.ok(names.length > 0, 'the reference holds merged weights');
      const params = new Map(merged.namedParameters());
      for (const name of names) {
        const weight = params.get(name);
        assert.ok(weight, `the merged model has ${name}`);
        await assertTensorClose(weight, await refValues(base, `${variant}.merged.${name}`), `${variant}.merged.${name}`);
      }
      const { logits } = await merged.forward({ inputIds: (await refBatch(base)).inputIds });
      await assertTensorClose(logits, await refValues(base, `${variant}.merged_logits`), `${variant}.merged_logits`);
    });

    if (base !== 'tiny-llama' && base !== 'tiny-qwen2') {
      // tiny-llama's AdamW runs are checked (at 1e-5) in test/optim/adamw5.test.ts.
      test(`${base} ${variant}: five AdamW steps reproduce torch's losses and adapter tensors`, async () => {
        const peft = await PeftModel.fromPretrained(await loadBase(base), adapterDir(base, variant), { isTrainable: true });
        const { losses, params } = await adamwFiveSteps(peft, await refBatch(base));
        assertClose(losses, await refValues(base, `${variant}.adamw5.losses`), `${variant}.adamw5.losses`);
        for (const [key, p] of params) await assertTensorClose(p, await refValues(base, `${variant}.adamw5.${key}`), `${variant}.adamw5.${key}`);
      });
    }

    test(`${base} ${variant}: greedy generation is token-identical to PEFT`, async () => {
      const peft = await PeftModel.fromPretrained(await loadBase(base), adapterDir(base, variant));
      const prompt = (await refBatch(base)).inputIds[0]!.slice(0, 8);
      const [sequence] = await peft.generate([prompt], { maxNewTokens: 16, doSample: false });
      assert.deepEqual(sequence!.slice(8), await refInts(base, `${variant}.generate`));
    });
  }
}
