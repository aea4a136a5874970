import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { AutoModelForCausalLM } from '../../src/models/auto.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { Linear } from '../../src/nn/layers.js';
import type { LinearLike } from '../../src/nn/module.js';
import { fromHost } from '../../src/ops/index.js';
import { saveModelPretrained } from '../../src/peft/export-checkpoint.js';
import { LoraLinear } from '../../src/peft/lora-linear.js';
import type { LoraRuntimeState } from '../../src/peft/runtime-state.js';
import '../../src/quant/index.js';
import { QuantError } from '../../src/quant/errors.js';
import { Linear4bit } from '../../src/quant/linear4bit.js';
import { mergeQloraToDense } from '../../src/quant/merge-qlora.js';
import { saveQuantizedPretrained } from '../../src/quant/save-quantized.js';
import { dequantizeNf4Weight, toFloat32 } from '../../src/quant/nf4-weight.js';
import { Rng } from '../../src/tensor/random.js';
import { fixturePath } from '../helpers/fixtures.js';
import { assertClose } from '../helpers/numeric.js';
import { BNB_DIR, DENSE_DIR, readAllTensors, referenceInputIds, tempDir } from './bnb-fixture.js';

const inputIds = await referenceInputIds();
/** r 4, alpha 8 on q_proj and v_proj: scaling 2. */
const adapter = await readAllTensors(fixturePath('tiny-llama-lora_qv', 'adapter_model.safetensors'));

/** tiny-llama-bnb-4bit with the tiny-llama-lora_qv adapter on its 4-bit q/v projections: a QLoRA model. */
async function qloraModel(): Promise<CausalLM> {
  const model = await AutoModelForCausalLM.fromPretrained(BNB_DIR);
  const state: LoraRuntimeState = { activeAdapters: ['default'], adaptersDisabled: false, training: false, rng: new Rng(0) };
  const paths = [...adapter.keys()].filter((k) => k.endsWith('.lora_A.weight')).map((k) => k.slice('base_model.model.'.length, -'.lora_A.weight'.length));
  for (const path of paths) {
    const tensorOf = (part: string) => {
      const t = adapter.get(`base_model.model.${path}.${part}.weight`)!;
      return fromHost(new Float32Array(t.data.slice().buffer), t.shape, 'float32');
    };
    const layer = new LoraLinear(model.getSubmodule(path) as LinearLike, path, state);
    layer.addAdapter('default', { r: 4, alpha: 8, scaling: 2, dropout: 0, useDora: false, loraBias: false }, { a: tensorOf('lora_A'), b: tensorOf('lora_B'), bBias: null, magnitude: null });
    const cut = path.lastIndexOf('.');
    model.getSubmodule(path.slice(0, cut)).replaceChild(path.slice(cut + 1), layer);
  }
  return model;
}

function modulesOf(model: CausalLM, type: abstract new (...args: never[]) => unknown): number {
  return [...model.namedModules()].filter(([, m]) => m instanceof type).length;
}

test('merging a QLoRA adapter gives a dense bf16 model whose logits match the QLoRA model within bf16 tolerance', async () => {
  const qlora = await qloraModel();
  const before = await qlora.run({ inputIds }).logits.data();
  const { model, report } = await mergeQloraToDense(qlora);
  assert.equal(modulesOf(model, Linear4bit), 0);
  assert.equal(modulesOf(model, LoraLinear), 0);
  assert.equal(model.config.raw['quantization_config'], undefined);
  assert.equal(report.layers.length, 4);
  // Rounding the float32 merge to bf16 (8 significant bits) costs at most half an ulp: 2^-8 of the largest weight.
  assert.ok(report.maxAbsError > 0 && report.maxRelativeError <= 2 ** -8, JSON.stringify(report));
  assert.equal(report.requantMaxAbsError, null);
  assertClose(await model.run({ inputIds }).logits.data(), before, 0.02, 'merged vs QLoRA logits');
});

test('a float32 merge equals dequant_fp32 + scaling * B A exactly (the error budget\'s reference)', async () => {
  const path = 'model.layers.1.self_attn.v_proj';
  const qlora = await qloraModel();
  const base = ((qlora.getSubmodule(path) as LoraLinear).base_layer as Linear4bit);
  const dequant = toFloat32(dequantizeNf4Weight(await base.quantizedWeight()));
  const { model, report } = await mergeQloraToDense(qlora, { dtype: 'float32' });
  assert.equal(report.maxAbsError, 0);
  const merged = await (model.getSubmodule(path) as Linear).weight.data();
  const a = new Float32Array(adapter.get(`base_model.model.${path}.lora_A.weight`)!.data.slice().buffer);
  const b = new Float32Array(adapter.get(`base_model.model.${path}.lora_B.weight`)!.data.slice().buffer);
  const expected = dequant.map((w, i) => {
    const [row, col] = [Math.floor(i / 64), i % 64];
    let delta = 0;
    for (let k = 0; k < 4; k++) delta += b[row * 4 + k]! * a[k * 64 + col]!;
    return w + 2 * delta;
  });
  assertClose(merged, expected, 1e-6, 'merged v_proj');
});

function meanAbsDiff(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
}

test('re-quantizing the merge gives a 4-bit model with its error reported, costing what quantizing the base cost', async () => {
  const dense = await mergeQloraToDense(await qloraModel());
  const denseLogits = await dense.model.run({ inputIds }).logits.data();
  const { model, report } = await mergeQloraToDense(await qloraModel(), { requantize: true });
  assert.equal(modulesOf(model, Linear4bit), 14);
  assert.ok(report.requantMaxAbsError !== null && report.requantMaxAbsError > 0);
  assert.equal((model.config.raw['quantization_config'] as Record<string, unknown>)['bnb_4bit_quant_type'], 'nf4');
  // Yardstick: how far the 4-bit checkpoint's logits are from the dense bf16 model's (mean 0.136).
  const base4bit = await (await AutoModelForCausalLM.fromPretrained(BNB_DIR)).run({ inputIds }).logits.data();
  const baseDense = await (await AutoModelForCausalLM.fromPretrained(DENSE_DIR, { dtype: 'bfloat16' })).run({ inputIds }).logits.data();
  const requantNoise = meanAbsDiff(await model.run({ inputIds }).logits.data(), denseLogits);
  assert.ok(requantNoise <= 1.5 * meanAbsDiff(base4bit, baseDense), `re-quantization noise ${requantNoise}`);
});

test('the dense merge saves as a plain checkpoint that loads back to the same logits', async () => {
  const { model } = await mergeQloraToDense(await qloraModel());
  const dir = join(await tempDir(), 'merged');
  await saveModelPretrained(model, dir);
  const loaded = await AutoModelForCausalLM.fromPretrained(dir);
  assert.equal(loaded.dtype, 'bfloat16');
  assert.deepStrictEqual(await loaded.run({ inputIds }).logits.data(), await model.run({ inputIds }).logits.data());
});

test('the re-quantized merge saves as a bnb-4bit checkpoint that loads back to the same logits', async () => {
  const { model } = await mergeQloraToDense(await qloraModel(), { requantize: true });
  const dir = join(await tempDir(), 'requantized');
  await saveQuantizedPretrained(model, dir);
  const loaded = await AutoModelForCausalLM.fromPretrained(dir);
  assert.equal(modulesOf(loaded, Linear4bit), 14);
  assert.deepStrictEqual(await loaded.run({ inputIds }).logits.data(), await model.run({ inputIds }).logits.data());
});

test('merging a model without LoRA layers is refused', async () => {
  await assert.rejects(mergeQloraToDense(await AutoModelForCausalLM.fromPretrained(BNB_DIR)), (e: unknown) => e instanceof QuantError && /no LoRA layers to merge/.test(e.message));
});
