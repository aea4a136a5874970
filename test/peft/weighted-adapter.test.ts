import { test } from 'node:test';
import assert from 'node:assert/strict';
import { add, matmul, mulScalar } from '../../src/ops/index.js';
import { LoraLinear, PeftModel } from '../../src/peft/index.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { adapterDir, assertTensorClose, loadBase } from './helpers.js';

async function withAdapters(names: Record<string, string>): Promise<PeftModel> {
  const [first, ...rest] = Object.entries(names);
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-llama'), adapterDir('tiny-llama', first![1]), { adapterName: first![0] });
  for (const [name, variant] of rest) await peft.loadAdapter(adapterDir('tiny-llama', variant), name);
  return peft;
}

const layer = (peft: PeftModel, path: string) => peft.model.getSubmodule(path) as LoraLinear;
const Q0 = 'model.layers.0.self_attn.q_proj';
const K0 = 'model.layers.0.self_attn.k_proj';

/** sum_i c_i * delta_i of the named adapters that the layer has. */
function weightedDelta(l: LoraLinear, terms: [string, number][]): Tensor {
  return noGrad(() => terms.filter(([n]) => l.hasAdapter(n)).map(([n, c]) => mulScalar(l.deltaWeight(n), c)).reduce((x, y) => add(x, y)));
}

test('cat: the combined update is sum w_i delta_i, with rank the sum of the ranks', async () => {
  const peft = await withAdapters({ a: 'lora', b: 'lora_qv' });
  await peft.addWeightedAdapter(['a', 'b'], [0.5, -2], 'ab', 'cat');
  assert.equal(peft.peftConfig.get('ab')!.r, 12);
  for (const path of [Q0, K0]) {
    const l = layer(peft, path);
    await assertTensorClose(l.deltaWeight('ab'), await weightedDelta(l, [['a', 0.5], ['b', -2]]).data(), path, 1e-6);
  }
});

test('linear: A and B are mixed with sqrt(|w s|) (the sign on A), as PEFT does', async () => {
  const peft = await withAdapters({ a: 'lora', b: 'rslora' });
  await peft.addWeightedAdapter(['a', 'b'], [0.7, -0.3], 'ab', 'linear');
  const l = layer(peft, Q0);
  const [sa, sb] = [l.settingsOf('a')!.scaling, l.settingsOf('b')!.scaling];
  const mix = (part: 'lora_A' | 'lora_B', ca: number, cb: number) => add(mulScalar(l[part].get('a')!.weight, ca), mulScalar(l[part].get('b')!.weight, cb));
  const expected = noGrad(() => matmul(mix('lora_B', Math.sqrt(0.7 * sa), Math.sqrt(0.3 * sb)), mix('lora_A', Math.sqrt(0.7 * sa), -Math.sqrt(0.3 * sb))));
  assert.equal(l.settingsOf('ab')!.scaling, 1);
  await assertTensorClose(l.deltaWeight('ab'), await expected.data(), 'linear delta', 1e-6);
});

test('linear refuses adapters of different ranks', async () => {
  const peft = await withAdapters({ a: 'lora', b: 'lora_qv' });
  await assert.rejects(peft.addWeightedAdapter(['a', 'b'], [1, 1], 'ab', 'linear'), /one rank.*8, 4/);
});

test('svd: with enough rank the update is exactly PEFT 0.21\'s sum w_i delta_i', async () => {
  const peft = await withAdapters({ a: 'lora', b: 'lora_qv' });
  await peft.addWeightedAdapter(['a', 'b'], [1, 0.5], 'ab', 'svd', { svdRank: 12 });
  for (const path of [Q0, K0]) {
    const l = layer(peft, path);
    const terms: [string, number][] = [['a', 1], ['b', 0.5]];
    await assertTensorClose(l.deltaWeight('ab'), await weightedDelta(l, terms).data(), path, 1e-5);
  }
});

test('svd at the default rank (the largest source rank) is lossless when the combination has that rank', async () => {
  const peft = await withAdapters({ a: 'lora_qv' });
  await peft.addWeightedAdapter(['a'], [1], 'copy', 'linear');
  await peft.addWeightedAdapter(['a', 'copy'], [1, 0], 'svd4', 'svd');
  const l = layer(peft, Q0);
  assert.deepEqual(l.lora_A.get('svd4')!.weight.shape, [4, 64]);
  await assertTensorClose(l.deltaWeight('svd4'), await weightedDelta(l, [['a', 1]]).data(), 'rank-4 svd', 1e-5);
});

test('svd below the combination\'s rank gives the best approximation: its residual is orthogonal to it', async () => {
  const peft = await withAdapters({ a: 'lora', b: 'lora_qv' });
  await peft.addWeightedAdapter(['a', 'b'], [1, 1], 'ab4', 'svd', { svdRank: 4 });
  const l = layer(peft, Q0);
  const full = await weightedDelta(l, [['a', 1], ['b', 1]]).data();
  const approx = await l.deltaWeight('ab4').data();
  let inner = 0;
  let norm = 0;
  let residual = 0;
  for (let i = 0; i < full.length; i++) {
    inner += (full[i]! - approx[i]!) * approx[i]!;
    norm += full[i]! ** 2;
    residual += (full[i]! - approx[i]!) ** 2;
  }
  assert.ok(Math.abs(inner) <= 1e-5 * norm, `<M - M4, M4> = ${inner}, |M|^2 = ${norm}`);
  assert.ok(residual > 1e-6 * norm && residual < norm);
});

test('the combined adapter is added inactive and frozen', async () => {
  const peft = await withAdapters({ a: 'lora', b: 'lora_qv' });
  await peft.addWeightedAdapter(['a', 'b'], [1, 1], 'ab', 'cat');
  assert.deepEqual(peft.activeAdapters, ['a']);
  assert.equal(peft.trainableParameters().size, 0);
});
