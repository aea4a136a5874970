/**
 * QLoRA on mixture-of-experts models: every expert matrix quantized to NF4 on its own (blocksize 64, double
 * quantization), checked against a float model holding each expert's NF4 round trip computed here, and expert
 * adapters training on top of the 4-bit experts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AutoModelForCausalLM } from '../../src/index.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { MoeExperts, SparseMoeBlock } from '../../src/models/moe.js';
import { fromHost } from '../../src/ops/index.js';
import { PeftModel } from '../../src/peft/index.js';
import { dequantizeNf4Weight, loadIn4bit, quantizeExpertsInPlace, quantizeNf4Weight } from '../../src/quant/index.js';
import { fixturePath } from '../helpers/fixtures.js';
import { assertClose } from '../helpers/numeric.js';

const IDS = [[5, 9, 33, 2, 17, 120, 8, 64, 200, 13]];

function expertsOf(model: CausalLM): MoeExperts[] {
  return [...model.namedModules()].flatMap(([, m]) => (m instanceof SparseMoeBlock && m.experts instanceof MoeExperts ? [m.experts] : []));
}

/** Replaces every expert matrix of a float32 model by its NF4 round trip (bitsandbytes' quantize_4bit then dequantize_4bit). */
async function roundTripExperts(model: CausalLM): Promise<void> {
  for (const experts of expertsOf(model)) {
    for (const name of ['gate_up_proj', 'down_proj'] as const) {
      const dense = experts[name]!;
      const [E, d1, d2] = dense.shape as [number, number, number];
      const values = await dense.data();
      const out = new Float32Array(values.length);
      for (let e = 0; e < E; e++) {
        const slice = values.slice(e * d1 * d2, (e + 1) * d1 * d2);
        const q = quantizeNf4Weight({ dtype: 'float32', data: slice }, [d1, d2], { blocksize: 64, doubleQuant: true });
        out.set(dequantizeNf4Weight(q).data as Float32Array, e * d1 * d2);
      }
      experts.setParameter(name, fromHost(out, [E, d1, d2], 'float32', dense.device));
    }
  }
}

for (const name of ['tiny-mixtral', 'tiny-gptoss']) {
  test(`${name}: NF4 experts give the logits of the float model holding every expert's NF4 round trip`, async () => {
    const quantized = await AutoModelForCausalLM.fromPretrained(fixturePath(name), { dtype: 'float32' });
    assert.equal(await quantizeExpertsInPlace(quantized), 2 * 2 * 4);
    for (const experts of expertsOf(quantized)) assert.deepEqual([experts.gate_up_proj, experts.isQuantized('gate_up_proj'), experts.isQuantized('down_proj')], [null, true, true]);
    const reference = await AutoModelForCausalLM.fromPretrained(fixturePath(name), { dtype: 'float32' });
    await roundTripExperts(reference);
    assertClose(await (await quantized.forward({ inputIds: IDS })).logits.data(), await (await reference.forward({ inputIds: IDS })).logits.data(), 1e-5, 'logits');
  });
}

test('loadIn4bit puts a MoE model\'s experts in NF4 too, and an expert adapter trains on them but cannot be merged into them', async () => {
  const model = await loadIn4bit(fixturePath('tiny-qwen3moe'), { dtype: 'float32', computeDtype: 'float32' });
  assert.ok(expertsOf(model).every((e) => e.isQuantized('gate_up_proj') && e.isQuantized('down_proj')));
  const peft = await PeftModel.fromPretrained(model, fixturePath('tiny-qwen3moe-lora_experts'), { isTrainable: true });
  const { loss } = await peft.forward({ inputIds: IDS, labels: IDS });
  await loss!.backward();
  const b = peft.trainableParameters().get('base_model.model.model.layers.1.mlp.experts.lora_B.weight')!;
  assert.ok((await b.grad!.data()).some((v) => v !== 0), 'the down_proj adapter of layer 1 gets a gradient');
  await assert.rejects(peft.mergeAndUnload(), { message: "The experts' gate_up_proj is held in 4 bits, so it cannot take merged adapters; load the model unquantized for that." });
});
