import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PeftModel, type CombinationType, type LoraLinear } from '../../src/peft/index.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import { fixturePath, readFixtureMetadata, readFixtureTensor } from '../helpers/fixtures.js';
import { assertClose, loadModel } from './helpers.js';

// PEFT 0.21 reference: add_weighted_adapter(["a", "b"], [0.7, 0.5], "w_<type>", combination_type=<type>, svd_rank=8,
// density=0.5, majority_sign_method="total") on tiny-llama-peftx; w_<type>.logits and layer 0's delta weights.
const REF = 'tiny-llama-peftx-extra-ref.safetensors';
const TYPES: CombinationType[] = ['linear', 'cat', 'svd', 'ties', 'ties_svd', 'magnitude_prune', 'magnitude_prune_svd'];
const MODULES = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];

async function refF32(name: string): Promise<Float32Array> {
  return (await readFixtureTensor(REF, name)).data as Float32Array;
}

async function inputIds(): Promise<number[][]> {
  const t = await readFixtureTensor(REF, 'input_ids');
  const [b, s] = t.shape as [number, number];
  const flat = Array.from(t.data as BigInt64Array, Number);
  return Array.from({ length: b }, (_, i) => flat.slice(i * s, (i + 1) * s));
}

async function withAdapters(): Promise<PeftModel> {
  const peft = await PeftModel.fromPretrained(await loadModel(fixturePath('tiny-llama-peftx')), fixturePath('tiny-llama-peftx-weighted', 'a'), { adapterName: 'a' });
  await peft.loadAdapter(fixturePath('tiny-llama-peftx-weighted', 'b'), 'b');
  return peft;
}

test('the reference was made with the options this test uses', async () => {
  const meta = await readFixtureMetadata(REF);
  assert.deepEqual(JSON.parse(meta['weights']!), [0.7, 0.5]);
  assert.equal(meta['svd_rank'], '8');
  assert.equal(meta['density'], '0.5');
  assert.equal(meta['majority_sign_method'], 'total');
});

const ids = await inputIds();

for (const type of TYPES) {
  test(`add_weighted_adapter "${type}": layer-0 deltas and logits match PEFT 0.21 (1e-4 relative)`, async () => {
    const peft = await withAdapters();
    const name = `w_${type}`;
    await peft.addWeightedAdapter(['a', 'b'], [0.7, 0.5], name, type, { svdRank: 8, density: 0.5, majoritySignMethod: 'total' });
    for (const m of MODULES) {
      const layer = peft.model.getSubmodule(`model.layers.0.${m}`) as LoraLinear;
      const delta = await noGrad(() => layer.deltaWeight(name)).data();
      assertClose(delta, await refF32(`${name}.delta.model.layers.0.${m}`), `${name} ${m}`);
    }
    peft.setAdapter(name, { inferenceMode: true });
    const { logits } = noGrad(() => peft.run({ inputIds: ids }));
    assertClose(await logits.data(), await refF32(`${name}.logits`), `${name}.logits`);
  });
}
