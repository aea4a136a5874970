// QLoRA on every dense family: each decoder projection (Phi-3's fused qkv_proj and gate_up_proj included) is
// quantized to NF4 on load, the model computes what the dense model computes with those projections' NF4 round
// trips, and LoRA trains on top of it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../src/index.js';
import { AutoModelForCausalLM } from '../../src/models/auto.js';
import { Linear } from '../../src/nn/layers.js';
import { AdamW } from '../../src/optim/index.js';
import { getPeftModel } from '../../src/peft/index.js';
import { Linear4bit, loadIn4bit } from '../../src/quant/index.js';
import { scopeAsync } from '../../src/tensor/scope.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';
import { fixturePath } from '../helpers/fixtures.js';
import { assertClose } from '../helpers/numeric.js';

await prepareTestDevice();

const IDS = [[5, 17, 99, 3, 250, 8, 41, 77, 12, 300, 6, 19, 2, 88, 160, 45]];

for (const name of ['tiny-qwen3', 'tiny-gemma2', 'tiny-gemma3', 'tiny-phi3', 'tiny-smollm3', 'tiny-olmo2']) {
  test(`${name}: the NF4 model matches the dense model with NF4 round-tripped projections, and LoRA trains on it`, async () => {
    const q = await loadIn4bit(fixturePath(name), { dtype: 'float32', computeDtype: 'float32', device: TEST_DEVICE });
    const quantized = [...q.namedModules()].filter(([, m]) => m instanceof Linear4bit);
    const expectedCount = q.config.numHiddenLayers * (q.config.fusedProjections ? 4 : 7);
    assert.equal(quantized.length, expectedCount, 'every decoder projection is 4-bit');

    const dense = await AutoModelForCausalLM.fromPretrained(fixturePath(name), { dtype: 'float32', device: TEST_DEVICE });
    for (const [path, m] of quantized) {
      const target = dense.getSubmodule(path) as Linear;
      target.setParameter('weight', (m as Linear4bit).dequantizedWeight('float32'));
    }
    const a = await (await q.forward({ inputIds: IDS })).logits.data();
    const b = await (await dense.forward({ inputIds: IDS })).logits.data();
    assertClose(a, b, 1e-5, 'NF4 logits');

    const peft = getPeftModel(q, { r: 4, loraAlpha: 8, targetModules: 'all-linear', initLoraWeights: 'gaussian' });
    peft.train();
    const optimizer = new AdamW(peft.trainableParameters(), { lr: 1e-2 });
    const losses: number[] = [];
    for (let step = 0; step < 4; step++) {
      await scopeAsync(async () => {
        const { loss } = peft.run({ inputIds: IDS, labels: IDS });
        await loss!.backward();
        losses.push(await loss!.item());
        optimizer.step();
        optimizer.zeroGrad();
      });
    }
    assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
    assert.ok(losses[3]! < losses[0]!, `the loss falls: ${losses}`);
  });
}
