import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/index.js';
import { AutoModelForCausalLM } from '../../src/models/auto.js';
import { AdamW } from '../../src/optim/index.js';
import { PeftModel } from '../../src/peft/index.js';
import { scopeAsync } from '../../src/tensor/scope.js';
import { fixturePath, readFixtureTensor } from '../helpers/fixtures.js';
import { maxAbsDiff } from '../helpers/numeric.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';

await prepareTestDevice();

const REF = 'tiny-llama-ref.safetensors';

async function rows(name: string): Promise<number[][]> {
  const t = await readFixtureTensor(REF, name);
  const flat = Array.from(t.data as BigInt64Array, Number);
  return Array.from({ length: t.shape[0]! }, (_, b) => flat.slice(b * t.shape[1]!, (b + 1) * t.shape[1]!));
}

/** max |a - b| <= tol * max |b|: relative to the tensor's scale (Adam's first steps move every element by about lr,
 * so an element whose gradient is near zero has no meaningful relative error of its own). */
function assertRelative(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  const { diff, scale } = maxAbsDiff(actual, expected);
  assert.ok(diff <= tol * scale, `${what}: max abs diff ${diff} exceeds ${tol} x ${scale}`);
}

for (const variant of ['lora', 'lora_qv', 'rslora', 'dora']) {
  test(`five AdamW steps on the fixture batch reproduce torch's losses and ${variant} adapter (1e-5 relative)`, async () => {
    const model = await AutoModelForCausalLM.fromPretrained(fixturePath('tiny-llama'), { dtype: 'float32', device: TEST_DEVICE });
    const peft = await PeftModel.fromPretrained(model, fixturePath(`tiny-llama-${variant}`), { isTrainable: true });
    peft.train();
    const inputIds = await rows('input_ids');
    const labels = await rows('labels');
    const params = peft.trainableParameters();
    const optimizer = new AdamW(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
    const losses: number[] = [];
    for (let step = 0; step < 5; step++) {
      await scopeAsync(async () => {
        const out = peft.run({ inputIds, labels });
        await out.loss!.backward();
        losses.push(await out.loss!.item());
        optimizer.step();
        optimizer.zeroGrad();
      });
    }
    const refLosses = (await readFixtureTensor(REF, `${variant}.adamw5.losses`)).data as Float32Array;
    assertRelative(losses, refLosses, 1e-5, 'losses');
    assert.ok(params.size > 0);
    for (const [key, p] of params) {
      // PEFT's parameter name for DoRA's magnitude ends in ".weight"; its saved key (ours) does not.
      const refKey = key.endsWith('lora_magnitude_vector') ? `${key}.weight` : key;
      const ref = (await readFixtureTensor(REF, `${variant}.adamw5.${refKey}`)).data as Float32Array;
      assertRelative(await p.data(), ref, 1e-5, key);
    }
  });
}
