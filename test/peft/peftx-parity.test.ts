import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, PeftModel } from '../../src/peft/index.js';
import { adamwFiveSteps, adapterDir, assertClose, assertTensorClose, loadBase, refBatch, refInts, refNames, refValues, tempDir, type BaseName } from './helpers.js';

// PEFT 0.21 references for tiny-llama-peftx (../shared/fixtures/README.md, "tiny-llama-peftx"): LoRA on embed_tokens,
// trainable_token_indices, modules_to_save ["lm_head"], rank_pattern / alpha_pattern. All within 1e-4 (helpers.TOLERANCE).
const BASE = 'tiny-llama-peftx' as BaseName;
const VARIANTS = ['lora_embed', 'tokens', 'save_head', 'patterns'];

/** PEFT's parameter name of a saved tensor: a modules_to_save copy's file key lacks ".modules_to_save". */
function parameterName(peft: PeftModel, key: string): string {
  for (const m of peft.peftConfig.get('default')!.modulesToSave ?? []) {
    const match = new RegExp(`^(.*\\b${m})\\.(weight|bias)$`).exec(key);
    if (match) return `${match[1]}.modules_to_save.${match[2]}`;
  }
  return key;
}

for (const variant of VARIANTS) {
  test(`peftx ${variant}: logits and loss match PEFT`, async () => {
    const peft = await PeftModel.fromPretrained(await loadBase(BASE), adapterDir(BASE, variant));
    const out = await peft.forward(await refBatch(BASE));
    await assertTensorClose(out.logits, await refValues(BASE, `${variant}.logits`), `${variant}.logits`);
    assertClose([await out.loss!.item()], await refValues(BASE, `${variant}.loss`), `${variant}.loss`);
  });

  test(`peftx ${variant}: every gradient matches PEFT`, async () => {
    const peft = await PeftModel.fromPretrained(await loadBase(BASE), adapterDir(BASE, variant), { isTrainable: true });
    const { loss } = await peft.forward(await refBatch(BASE));
    await loss!.backward();
    const params = peft.trainableParameters();
    const names = [...params.keys()].map((k) => parameterName(peft, k));
    assert.deepEqual(names.sort(), (await refNames(BASE, `${variant}.grad.`)).map((n) => n.slice(`${variant}.grad.`.length)).sort());
    for (const [key, t] of params) {
      assert.ok(t.grad, `${key} has no gradient`);
      await assertTensorClose(t.grad, await refValues(BASE, `${variant}.grad.${parameterName(peft, key)}`), `${variant}.grad.${key}`);
    }
  });

  test(`peftx ${variant}: greedy generation is token-identical to PEFT`, async () => {
    const peft = await PeftModel.fromPretrained(await loadBase(BASE), adapterDir(BASE, variant));
    const prompt = (await refBatch(BASE)).inputIds[0]!.slice(0, 8);
    const [sequence] = await peft.generate([prompt], { maxNewTokens: 16, doSample: false });
    assert.deepEqual(sequence!.slice(8), await refInts(BASE, `${variant}.generate`));
  });

  test(`peftx ${variant}: five AdamW steps reproduce torch's losses and adapter tensors`, async () => {
    const peft = await PeftModel.fromPretrained(await loadBase(BASE), adapterDir(BASE, variant), { isTrainable: true });
    const { losses, params } = await adamwFiveSteps(peft, await refBatch(BASE));
    assertClose(losses, await refValues(BASE, `${variant}.adamw5.losses`), `${variant}.adamw5.losses`);
    for (const [key, p] of params) {
      const name = parameterName(peft, key);
      await assertTensorClose(p, await refValues(BASE, `${variant}.adamw5.${name}`), `${variant}.adamw5.${name}`);
    }
  });

  test(`peftx ${variant}: mergeAndUnload gives PEFT's merged weights and logits`, async () => {
    const peft = await PeftModel.fromPretrained(await loadBase(BASE), adapterDir(BASE, variant));
    const merged = await peft.mergeAndUnload();
    const names = (await refNames(BASE, `${variant}.merged.`)).filter((n) => n !== `${variant}.merged_logits`).map((n) => n.slice(`${variant}.merged.`.length));
    assert.ok(names.length > 0, 'the reference holds merged weights');
    const params = new Map(merged.namedParameters());
    for (const name of names) {
      const weight = params.get(name);
      assert.ok(weight, `the merged model has ${name}`);
      await assertTensorClose(weight, await refValues(BASE, `${variant}.merged.${name}`), `${variant}.merged.${name}`);
    }
    const { logits } = await merged.forward({ inputIds: (await refBatch(BASE)).inputIds });
    await assertTensorClose(logits, await refValues(BASE, `${variant}.merged_logits`), `${variant}.merged_logits`);
  });

  test(`peftx ${variant}: load then save reproduces PEFT's adapter files byte for byte`, async () => {
    const dir = await tempDir();
    const peft = await PeftModel.fromPretrained(await loadBase(BASE), adapterDir(BASE, variant));
    await peft.savePretrained(dir);
    for (const file of [ADAPTER_WEIGHTS_NAME, ADAPTER_CONFIG_NAME]) {
      assert.deepEqual(await readFile(join(dir, file)), await readFile(join(adapterDir(BASE, variant), file)), file);
    }
  });
}
