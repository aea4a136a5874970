import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AutoModelForCausalLM } from '../../src/models/auto.js';
import '../../src/quant/index.js';
import { Linear4bit } from '../../src/quant/linear4bit.js';
import { loadIn4bit } from '../../src/quant/load-in-4bit.js';
import { quantMemoryReport } from '../../src/quant/memory-report.js';
import { quantizeLinearsInPlace } from '../../src/quant/quantize-in-place.js';
import { serializeQuantState } from '../../src/quant/quant-state.js';
import { BNB_DIR, DENSE_DIR, readAllTensors, referenceInputIds } from './bnb-fixture.js';

const inputIds = await referenceInputIds();
const reference = await readAllTensors(`${BNB_DIR}/model.safetensors`);
const referenceLogits = await (await AutoModelForCausalLM.fromPretrained(BNB_DIR)).run({ inputIds }).logits.data();

async function assertMatchesCheckpoint(model: Awaited<ReturnType<typeof loadIn4bit>>): Promise<void> {
  const layers = [...model.namedModules()].filter(([, m]) => m instanceof Linear4bit) as [string, Linear4bit][];
  assert.equal(layers.length, 14);
  for (const [path, layer] of layers) {
    for (const t of serializeQuantState(`${path}.weight`, await layer.quantizedWeight())) assert.deepStrictEqual(t.data, reference.get(t.name)!.data, t.name);
  }
  assert.deepStrictEqual(await model.run({ inputIds }).logits.data(), referenceLogits);
}

test('quantizeLinearsInPlace on dense tiny-llama loaded in bf16 reproduces the bnb-4bit checkpoint and its logits', async () => {
  const model = await AutoModelForCausalLM.fromPretrained(DENSE_DIR, { dtype: 'bfloat16' });
  assert.equal(await quantizeLinearsInPlace(model, { blocksize: 64, doubleQuant: true, computeDtype: 'bfloat16' }), 14);
  await assertMatchesCheckpoint(model);
  assert.equal(await quantizeLinearsInPlace(model), 0, 'a second call finds nothing dense to quantize');
});

test('loadIn4bit quantizes a dense checkpoint projection by projection while loading', async () => {
  await assertMatchesCheckpoint(await loadIn4bit(DENSE_DIR));
});

test('quantMemoryReport separates packed weights, quantization constants and other parameters', async () => {
  const model = await AutoModelForCausalLM.fromPretrained(BNB_DIR);
  const report = quantMemoryReport(model);
  // Per layer: q 4096 + k 2048 + v 2048 + o 4096 + 3 x 10240 weights; 4 bits each.
  const perLayer = 4096 + 2048 + 2048 + 4096 + 3 * 10240;
  // Per projection: 256 padded absmax codes, 1 nested scale (4 B), nested code 1024 B, NF4 code 64 B.
  const constants = 14 * (256 + 4 + 1024 + 64);
  // bf16: embed 384x64, lm_head 384x64, 5 norms of 64.
  const frozen = 2 * (2 * 384 * 64 + 5 * 64);
  assert.deepStrictEqual(report, {
    quantizedLayers: 14,
    quantizedParameters: 2 * perLayer,
    packedWeightBytes: perLayer,
    quantConstantBytes: constants,
    frozenParameterBytes: frozen,
    trainableParameterBytes: 0,
    totalBytes: perLayer + constants + frozen,
  });
});
