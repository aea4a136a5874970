import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { runMerge } from '../../src/cli/merge.js';
import { loadModelFrom } from '../../src/cli/model-source.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { Linear } from '../../src/nn/layers.js';
import { fromHost, to } from '../../src/ops/index.js';
import { LoraLinear, PeftModel } from '../../src/peft/index.js';
import { Linear4bit } from '../../src/quant/index.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import { fixturePath } from '../helpers/fixtures.js';
import { assertClose, loadBase, loadModel, maxError, tempDir } from './helpers.js';

const IDS = [[1, 5, 9, 17, 33, 65, 100, 7], [2, 4, 8, 16, 32, 64, 128, 3]];
const BNB = fixturePath('tiny-llama-bnb-4bit');
const Q0 = 'model.layers.0.self_attn.q_proj';

async function logitsOf(model: { run(i: { inputIds: number[][] }): { logits: { data(): Promise<Float32Array> } } }): Promise<Float32Array> {
  return noGrad(() => model.run({ inputIds: IDS })).logits.data();
}

/** A LoRA adapter of trained size: random A and B (init_lora_weights=False), B scaled down to 0.02 of its init. */
async function loraOn(model: CausalLM): Promise<PeftModel> {
  const peft = PeftModel.create(model, { r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'], initLoraWeights: false, seed: 3 });
  for (const [, m] of [...peft.model.namedModules()]) {
    if (!(m instanceof LoraLinear)) continue;
    const b = m.lora_B.get('default')!;
    const values = (await b.weight.data()).map((v) => v * 0.02);
    b.setParameter('weight', fromHost(values, b.weight.shape, 'float32', b.weight.device).keep());
  }
  return peft;
}

async function weightOf(peft: PeftModel, path: string): Promise<Float32Array> {
  return ((peft.model.getSubmodule(path) as LoraLinear).base_layer as Linear).weight.data();
}

/** The bnb-4bit fixture with every Linear4bit replaced by a float32 Linear of its dequantized weight. */
async function dequantizedBnb(): Promise<CausalLM> {
  const model = await loadModelFrom(BNB, 'float32', 'cpu');
  for (const [path, m] of [...model.namedModules()]) {
    if (!(m instanceof Linear4bit)) continue;
    const cut = path.lastIndexOf('.');
    const dense = noGrad(() => new Linear(to(m.dequantizedWeight(m.weight4bit.sourceDType), { dtype: 'float32' }).keep(), m.bias));
    model.getSubmodule(path.slice(0, cut)).replaceChild(path.slice(cut + 1), dense);
  }
  return model;
}

// PEFT tests/testing_common.py _test_safe_merge: merge_and_unload(safe_merge=True) gives the adapter's logits.
test('safe merge (PEFT _test_safe_merge): mergeAndUnload({ safeMerge: true }) keeps the logits', async () => {
  const peft = await loraOn(await loadBase('tiny-llama'));
  const withAdapter = await logitsOf(peft);
  const merged = await peft.mergeAndUnload({ safeMerge: true });
  assert.ok(![...merged.namedModules()].some(([, m]) => m instanceof LoraLinear));
  assertClose(await logitsOf(merged), withAdapter, 'safe-merged logits', 1e-5);
});

// PEFT _test_merge_layers_nan: a broken (NaN) adapter is refused by safe_merge, naming it; the base stays as it was.
test('safe merge (PEFT _test_merge_layers_nan): a NaN adapter throws, naming adapter and layer, and nothing is merged', async () => {
  const peft = await loraOn(await loadBase('tiny-llama'));
  const layer = peft.model.getSubmodule('model.layers.1.mlp.down_proj') as LoraLinear;
  const a = layer.lora_A.get('default')!;
  const values = await a.weight.data();
  values[3] = Number.NaN;
  a.setParameter('weight', fromHost(values, a.weight.shape, 'float32', a.weight.device).keep());
  const before = await weightOf(peft, Q0);
  await assert.rejects(peft.mergeAdapter(undefined, { safeMerge: true }), /NaNs or infinities .*model\.layers\.1\.mlp\.down_proj for adapter "default"/);
  assert.deepEqual(await weightOf(peft, Q0), before);
  assert.ok(!(peft.model.getSubmodule(Q0) as LoraLinear).merged);
  await assert.rejects(peft.mergeAndUnload({ safeMerge: true }), /adapter "default"/);
});

// PEFT _test_unload_adapter / test_other.py unload: the base model back, unmerged, without LoRA layers.
test('unload (PEFT _test_unload_adapter): LoRA layers removed, base logits, no merge', async () => {
  const baseLogits = await logitsOf(await loadBase('tiny-llama'));
  const peft = await loraOn(await loadBase('tiny-llama'));
  const withAdapter = await logitsOf(peft);
  assert.ok(maxError(withAdapter, baseLogits).abs > 1e-4);
  const base = peft.unload();
  assert.ok(![...base.namedModules()].some(([, m]) => m instanceof LoraLinear));
  assertClose(await logitsOf(base), baseLogits, 'unloaded logits', 1e-6);
  assert.throws(() => peft.unload(), /unloaded/);
});

// PEFT's bnb Linear4bit.merge (tests/test_common_gpu.py test_4bit_merge_lora): dequantize, add, requantize.
test('mergeAdapter on a 4-bit base requantizes to NF4 with the same settings; unmerge restores the 4-bit weight', async () => {
  const peft = await loraOn(await loadModelFrom(BNB, 'float32', 'cpu'));
  const layer = peft.model.getSubmodule(Q0) as LoraLinear;
  const original = layer.base_layer as Linear4bit;
  const unmerged = await logitsOf(peft);
  const expected = noGrad(() => to(original.dequantizedWeight('float32'), { dtype: 'float32' })).data();
  await peft.mergeAdapter();
  const merged4 = layer.base_layer as Linear4bit;
  assert.ok(merged4 instanceof Linear4bit && merged4 !== original);
  assert.equal(merged4.weight4bit.blocksize, original.weight4bit.blocksize);
  assert.equal(merged4.weight4bit.doubleQuantized, original.weight4bit.doubleQuantized);
  // dequant(NF4(W + delta)) is within NF4's half step (<= ~0.1 of a block's absmax) of W + delta.
  const delta = await noGrad(() => layer.deltaWeight('default')).data();
  const target = (await expected).map((w, i) => w + delta[i]!);
  const got = await noGrad(() => to(merged4.dequantizedWeight('float32'), { dtype: 'float32' })).data();
  const { abs, scale } = maxError(got, target);
  assert.ok(abs < 0.15 * scale, `requantization error ${abs}`);
  const mergedLogits = await logitsOf(peft);
  const drift = maxError(mergedLogits, unmerged);
  assert.ok(drift.abs < 0.05 * drift.scale, `merged 4-bit logits drift ${drift.abs} of ${drift.scale}`);
  peft.unmergeAdapter();
  assert.equal(layer.base_layer, original);
  assert.deepEqual(await logitsOf(peft), unmerged);
});

test('loraforge merge of a QLoRA adapter (bnb-4bit base) writes a dense checkpoint = adapter on the dequantized base (1e-4), or bnb-4bit with --requantize', async () => {
  const dir = await tempDir();
  const adapterDir = join(dir, 'adapter');
  await (await loraOn(await loadModelFrom(BNB, 'float32', 'cpu'))).savePretrained(adapterDir);
  const reference = await PeftModel.fromPretrained(await dequantizedBnb(), adapterDir);
  const expected = await logitsOf(reference);

  const dense = join(dir, 'dense');
  assert.equal(await runMerge(['--adapter', adapterDir, '--model', BNB, '--output', dense, '--dtype', 'float32']), 0);
  const merged = await loadModel(dense);
  assert.ok(![...merged.namedModules()].some(([, m]) => m instanceof Linear4bit || m instanceof LoraLinear));
  assertClose(await logitsOf(merged), expected, 'dense merged checkpoint');

  const q = join(dir, 'requantized');
  assert.equal(await runMerge(['--adapter', adapterDir, '--model', BNB, '--output', q, '--dtype', 'float32', '--requantize']), 0);
  const requant = await loadModelFrom(q, 'float32', 'cpu');
  assert.ok([...requant.namedModules()].some(([, m]) => m instanceof Linear4bit));
  const { abs, scale } = maxError(await logitsOf(requant), expected);
  assert.ok(abs < 0.05 * scale, `requantized checkpoint logits off by ${abs} of ${scale}`);
});
