import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { decodeTensor } from '../../src/io/decode.js';
import { f32ArrayToBf16 } from '../../src/tensor/dtype.js';
import { dequantizeNf4Weight, quantizeNf4Weight } from '../../src/quant/nf4-weight.js';
import { parseQuantState, quantStateTensorNames, serializeQuantState, type RawTensor } from '../../src/quant/quant-state.js';
import { fixturePath } from '../helpers/fixtures.js';

const STATE_SUFFIX = '.quant_state.bitsandbytes__nf4';

async function readAll(file: SafetensorsFile, names: string[]): Promise<Map<string, RawTensor>> {
  const out = new Map<string, RawTensor>();
  for (const name of names) {
    if (!file.has(name)) continue;
    const { dtype, shape } = file.info(name);
    out.set(name, { dtype, shape, data: await file.read(name) });
  }
  return out;
}

async function withFiles<T>(body: (dense: SafetensorsFile, quantized: SafetensorsFile, weights: string[]) => Promise<T>): Promise<T> {
  const dense = await SafetensorsFile.open(fixturePath('tiny-llama', 'model.safetensors'));
  const quantized = await SafetensorsFile.open(fixturePath('tiny-llama-bnb-4bit', 'model.safetensors'));
  try {
    const weights = quantized.names().filter((n) => n.endsWith(STATE_SUFFIX)).map((n) => n.slice(0, -STATE_SUFFIX.length)).sort();
    return await body(dense, quantized, weights);
  } finally {
    await dense.close();
    await quantized.close();
  }
}

test('quantizing each tiny-llama projection (cast to bf16, nf4, double quant) reproduces the bnb-4bit checkpoint byte for byte', async () => {
  await withFiles(async (dense, quantized, weights) => {
    assert.equal(weights.length, 14);
    for (const name of weights) {
      const info = dense.info(name);
      const bf16 = f32ArrayToBf16(decodeTensor('float32', await dense.read(name)));
      const weight = quantizeNf4Weight({ dtype: 'bfloat16', data: bf16 }, info.shape, { blocksize: 64, doubleQuant: true });
      const expected = await readAll(quantized, quantStateTensorNames(name));
      const produced = serializeQuantState(name, weight);
      assert.deepStrictEqual(produced.map((t) => t.name).sort(), [...expected.keys()].sort(), name);
      for (const tensor of produced) {
        const ref = expected.get(tensor.name)!;
        assert.equal(tensor.dtype, ref.dtype, tensor.name);
        assert.deepStrictEqual(tensor.shape, ref.shape, tensor.name);
        assert.deepStrictEqual(tensor.data, ref.data, tensor.name);
      }
    }
  });
});

test('every tiny-llama bnb-4bit projection parses and dequantizes to bfloat16 of its dense shape', async () => {
  await withFiles(async (dense, quantized, weights) => {
    for (const name of weights) {
      const tensors = await readAll(quantized, quantStateTensorNames(name));
      const weight = parseQuantState(name, (n) => tensors.get(n), quantized.path);
      assert.deepStrictEqual(weight.state.shape, dense.info(name).shape, name);
      const out = dequantizeNf4Weight(weight);
      assert.equal(out.dtype, 'bfloat16');
      assert.equal(out.data.length, weight.packed.length * 2, name);
    }
  });
});
