import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AutoModelForCausalLM } from '../../src/index.js';
import { fixturePath, readFixtureTensor } from '../helpers/fixtures.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';
import { assertClose } from '../helpers/numeric.js';

await prepareTestDevice();

async function refRows(ref: string, name: string): Promise<number[][]> {
  const t = await readFixtureTensor(ref, name);
  const [B, T] = t.shape as [number, number];
  const flat = Array.from(t.data as BigInt64Array, Number);
  return Array.from({ length: B }, (_, b) => flat.slice(b * T, (b + 1) * T));
}

const DENSE = ['tiny-llama', 'tiny-qwen2', 'tiny-qwen3', 'tiny-gemma2', 'tiny-gemma3', 'tiny-phi3', 'tiny-smollm3', 'tiny-olmo2'];
const MIXTURE_OF_EXPERTS = ['tiny-mixtral', 'tiny-qwen3moe', 'tiny-gptoss'];

for (const name of [...DENSE, ...MIXTURE_OF_EXPERTS]) {
  const ref = `${name}-ref.safetensors`;

  test(`${name}: float32 logits and loss match transformers within 1e-4`, async () => {
    const model = await AutoModelForCausalLM.fromPretrained(fixturePath(name), { dtype: 'float32', device: TEST_DEVICE });
    const out = await model.forward({ inputIds: await refRows(ref, 'input_ids'), labels: await refRows(ref, 'labels') });
    assert.deepEqual(out.logits.shape, [3, 24, 384]);
    assertClose(await out.logits.data(), (await readFixtureTensor(ref, 'logits_base')).data as Float32Array, 1e-4, 'logits');
    const loss = await out.loss!.item();
    const expected = ((await readFixtureTensor(ref, 'loss_base')).data as Float32Array)[0]!;
    assert.ok(Math.abs(loss - expected) <= 1e-4 * Math.max(1, Math.abs(expected)), `loss ${loss} vs ${expected}`);
  });

  test(`${name}: greedy generation is token-identical to transformers`, async () => {
    const model = await AutoModelForCausalLM.fromPretrained(fixturePath(name), { dtype: 'float32', device: TEST_DEVICE });
    const prompt = (await refRows(ref, 'input_ids'))[0]!.slice(0, 8);
    const [seq] = await model.generate([prompt], { maxNewTokens: 16, doSample: false });
    const expected = Array.from((await readFixtureTensor(ref, 'generate_base')).data as BigInt64Array, Number);
    assert.deepEqual(seq!.slice(0, 8), prompt);
    assert.deepEqual(seq!.slice(8), expected);
  });

  // A router's top-k flips between near-tied experts under bf16 rounding, so the MoE models have no bf16 bound.
  if (!DENSE.includes(name)) continue;
  test(`${name}: bfloat16 weights give logits within bf16 tolerance`, async () => {
    const model = await AutoModelForCausalLM.fromPretrained(fixturePath(name), { dtype: 'bfloat16', device: TEST_DEVICE });
    assert.equal(model.model.embed_tokens.weight.dtype, 'bfloat16');
    const out = await model.forward({ inputIds: await refRows(ref, 'input_ids') });
    assert.equal(out.logits.dtype, 'bfloat16');
    // bf16 keeps 8 significant bits; errors compound over 2 layers: 5e-2 of the logit scale.
    assertClose(await out.logits.data(), (await readFixtureTensor(ref, 'logits_base')).data as Float32Array, 5e-2, 'bf16 logits');
  });
}

test('a batch with left padding gives each row the logits it has alone', async () => {
  const model = await AutoModelForCausalLM.fromPretrained(fixturePath('tiny-llama'), { dtype: 'float32', device: TEST_DEVICE });
  const alone = await model.forward({ inputIds: [[5, 6, 7]] });
  const padded = await model.forward({ inputIds: [[0, 0, 5, 6, 7], [9, 8, 7, 6, 5]], attentionMask: [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]] });
  const a = await alone.logits.data();
  const p = await padded.logits.data();
  assertClose(p.subarray(2 * 384, 5 * 384), a, 1e-5, 'left-padded row');
});
