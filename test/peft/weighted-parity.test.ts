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

// PEFT's testing_common._test_weighted_combination_of_adapters_lora: three adapters, weights of both signs, every
// combination type; each gives a new adapter of the expected rank on every targeted layer, and the exact types give
// the weighted sum of the deltas.
test('three adapters with negative weights: every combination type yields an adapter of the expected rank (_test_weighted_combination_of_adapters_lora)', async () => {
  const peft = await withAdapters();
  await peft.loadAdapter(fixturePath('tiny-llama-peftx-weighted', 'a'), 'c');
  const weights = [2.0, -0.3, 0.7];
  const sources = ['a', 'b', 'c'];
  const layer = () => peft.model.getSubmodule('model.layers.0.self_attn.q_proj') as LoraLinear;
  const sum = await noGrad(async () => {
    const deltas = await Promise.all(sources.map((s) => layer().deltaWeight(s).data()));
    return deltas[0]!.map((_, i) => deltas.reduce((acc, d, k) => acc + weights[k]! * d[i]!, 0));
  });
  const types: [CombinationType, number][] = [
    ['cat', 24], ['svd', 8], ['ties', 8], ['ties_svd', 8], ['dare_linear', 8], ['dare_ties', 8], ['dare_linear_svd', 8], ['dare_ties_svd', 8], ['magnitude_prune', 8], ['magnitude_prune_svd', 8],
  ];
  for (const [type, rank] of types) {
    const name = `neg_${type}`;
    await peft.addWeightedAdapter(sources, weights, name, type, { svdRank: 8, density: 0.5, seed: 3 });
    assert.equal(layer().lora_A.get(name)!.weight.shape[0], rank, `${type} rank`);
    const delta = await noGrad(() => layer().deltaWeight(name)).data();
    assert.ok(delta.every(Number.isFinite), `${type} delta is finite`);
    if (type === 'cat') assertClose(delta, sum, 'cat is the exact weighted sum of the deltas', 1e-5);
  }
  // svd at the full combined rank (24 >= rank of the sum) reproduces the weighted sum too.
  await peft.addWeightedAdapter(sources, weights, 'neg_svd_full', 'svd', { svdRank: 24 });
  assertClose(await noGrad(() => layer().deltaWeight('neg_svd_full')).data(), sum, 'full-rank svd', 1e-5);
  // linear needs equal ranks and combines A and B separately (sign on A), so it is not the sum of deltas.
  await peft.addWeightedAdapter(sources, weights, 'neg_linear', 'linear');
  assert.equal(layer().lora_A.get('neg_linear')!.weight.shape[0], 8);
});
