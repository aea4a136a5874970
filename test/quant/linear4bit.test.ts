import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Linear } from '../../src/nn/layers.js';
import { fromHost, linear, sum, tensor } from '../../src/ops/index.js';
import { f32ArrayToBf16 } from '../../src/tensor/dtype.js';
import { QuantError } from '../../src/quant/errors.js';
import { Linear4bit } from '../../src/quant/linear4bit.js';
import { dequantizeNf4Weight, quantizeNf4Weight, type Nf4Weight } from '../../src/quant/nf4-weight.js';
import { parseQuantState, serializeQuantState } from '../../src/quant/quant-state.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';
import { seededValues } from '../helpers/numeric.js';
import { BNB_DIR, readAllTensors, STATE_SUFFIX } from './bnb-fixture.js';

await prepareTestDevice();
const device = TEST_DEVICE;
const checkpoint = await readAllTensors(`${BNB_DIR}/model.safetensors`);
const weightNames = [...checkpoint.keys()].filter((n) => n.endsWith(STATE_SUFFIX)).map((n) => n.slice(0, -STATE_SUFFIX.length)).sort();

function fixtureWeight(name: string): Nf4Weight {
  return parseQuantState(name, (n) => checkpoint.get(n), `${BNB_DIR}/model.safetensors`);
}

function bitsOf(values: Float32Array): Uint16Array {
  return f32ArrayToBf16(values);
}

test('dequantizedWeight() on the device equals bitsandbytes dequantize_4bit (bf16 bits) for every checkpoint projection', async () => {
  assert.equal(weightNames.length, 14);
  for (const name of weightNames) {
    const weight = fixtureWeight(name);
    const layer = new Linear4bit(weight, { device });
    const dense = layer.dequantizedWeight();
    assert.equal(dense.dtype, 'bfloat16');
    assert.deepStrictEqual(dense.shape, weight.state.shape);
    assert.deepStrictEqual(bitsOf(await dense.data()), dequantizeNf4Weight(weight).data, name);
  }
});

test('a bf16 forward equals a dense bf16 linear of the dequantized weight bit for bit', async () => {
  const layer = new Linear4bit(fixtureWeight('model.layers.0.mlp.gate_proj.weight'), { device });
  const x = tensor(seededValues(3 * 5 * 64, 7), [3, 5, 64], { dtype: 'bfloat16', device });
  const expected = linear(x, layer.dequantizedWeight());
  const actual = layer.forward(x);
  assert.equal(actual.dtype, 'bfloat16');
  assert.deepStrictEqual(actual.shape, [3, 5, 160]);
  assert.deepStrictEqual(await actual.data(), await expected.data());
});

test('the gradient reaches the input through the dequantized weight and the 4-bit weight gets none', async () => {
  const weight = fixtureWeight('model.layers.1.self_attn.o_proj.weight');
  const layer = new Linear4bit(weight, { device });
  const dense = new Linear(layer.dequantizedWeight());
  const values = seededValues(2 * 4 * 64, 11);
  const x4 = tensor(values, [2, 4, 64], { dtype: 'bfloat16', requiresGrad: true, device });
  const xd = tensor(values, [2, 4, 64], { dtype: 'bfloat16', requiresGrad: true, device });
  await sum(layer.forward(x4)).backward();
  await sum(dense.forward(xd)).backward();
  assert.ok(x4.grad, 'input has a gradient');
  assert.deepStrictEqual(await x4.grad.data(), await xd.grad!.data());
  assert.deepStrictEqual([...layer.namedParameters()], []);
});

test('float32 compute with a bias and single (not double) quantization equals linear(x, dequant, bias)', async () => {
  const w = seededValues(24 * 40, 3, 0.2);
  const weight = quantizeNf4Weight({ dtype: 'float32', data: w }, [24, 40], { blocksize: 32, doubleQuant: false });
  const bias = tensor(seededValues(24, 5), [24], { device });
  const layer = new Linear4bit(weight, { bias, computeDtype: 'float32', device });
  const x = tensor(seededValues(6 * 40, 9), [6, 40], { device });
  const expected = linear(x, fromHost(dequantizeNf4Weight(weight).data, [24, 40], 'float32', device), bias);
  assert.deepStrictEqual(await layer.forward(x).data(), await expected.data());
  assert.deepStrictEqual(layer.ownParameterNames(), ['bias']);
  assert.equal(layer.inFeatures, 40);
  assert.equal(layer.outFeatures, 24);
});

test('a float32 input to a bf16-compute layer is cast in and the output cast back, as bitsandbytes does', async () => {
  const layer = new Linear4bit(fixtureWeight('model.layers.0.self_attn.k_proj.weight'), { device });
  const values = seededValues(4 * 64, 13);
  const y = layer.forward(tensor(values, [4, 64], { device }));
  const ref = layer.forward(tensor(values, [4, 64], { dtype: 'bfloat16', device }));
  assert.equal(y.dtype, 'float32');
  assert.deepStrictEqual(await y.data(), await ref.data());
});

test('making the whole layer trainable cannot make the 4-bit weight trainable', () => {
  const bias = tensor(new Float32Array(32), [32], { dtype: 'bfloat16', device });
  const layer = new Linear4bit(fixtureWeight('model.layers.0.self_attn.v_proj.weight'), { bias });
  layer.requiresGrad_(true);
  assert.deepStrictEqual([...layer.namedParameters()].map(([n]) => n), ['bias']);
});

test('quantizedWeight() reads back the exact bitsandbytes tensors for saving', async () => {
  const name = 'model.layers.1.mlp.down_proj.weight';
  const layer = new Linear4bit(fixtureWeight(name), { device });
  for (const t of serializeQuantState(name, await layer.quantizedWeight())) {
    const ref = checkpoint.get(t.name)!;
    assert.deepStrictEqual([t.dtype, t.shape, t.data], [ref.dtype, ref.shape, ref.data], t.name);
  }
});

test('quantizedBytes() counts the packed codes and the double-quantized constants', () => {
  const bytes = new Linear4bit(fixtureWeight('model.layers.0.mlp.up_proj.weight')).quantizedBytes();
  // 10240 weights: 5120 packed bytes; 160 codes padded to one nested block of 256, 1 nested scale,
  // the 256-entry nested code and the 16-entry NF4 code in float32.
  assert.deepStrictEqual(bytes, { packed: 5120, constants: 256 + 4 + 256 * 4 + 16 * 4 });
});

test('a 4-bit linear refuses a weight that is not 2-D and a bias of the wrong length', () => {
  const weight = quantizeNf4Weight({ dtype: 'float32', data: seededValues(128, 1) }, [2, 4, 16]);
  assert.throws(() => new Linear4bit(weight, { device }), (e: unknown) => e instanceof QuantError && /needs a 2-D \[out, in\] weight, but the quantized weight has shape \[2, 4, 16\]/.test(e.message));
  const flat = quantizeNf4Weight({ dtype: 'float32', data: seededValues(128, 1) }, [8, 16]);
  assert.throws(() => new Linear4bit(flat, { bias: tensor(new Float32Array(7), [7]) }), /needs a bias of shape \[8\], got \[7\]/);
});
