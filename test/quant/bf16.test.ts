import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16ArrayToF32, f32ArrayToBf16 } from '../../src/tensor/dtype.js';
import { dequantizeNf4Weight, quantizeNf4Weight } from '../../src/quant/nf4-weight.js';
import { maxAbsDiff, refF32, refU8 } from './nf4-ref.js';

async function bf16Weight() {
  const bits = f32ArrayToBf16(await refF32('W'));
  return quantizeNf4Weight({ dtype: 'bfloat16', data: bits }, [192, 256], { blocksize: 64, doubleQuant: true });
}

test('a bfloat16 weight is quantized from its exact float32 widening (bf16.packed)', async () => {
  const weight = await bf16Weight();
  assert.deepStrictEqual(weight.packed, await refU8('bf16.packed'));
  assert.equal(weight.state.dtype, 'bfloat16');
});

test('a bfloat16 weight dequantizes to bfloat16: float32 code * absmax rounded to nearest even (bf16.dequant)', async () => {
  const out = dequantizeNf4Weight(await bf16Weight());
  assert.equal(out.dtype, 'bfloat16');
  assert.ok(out.data instanceof Uint16Array);
  const ref = await refF32('bf16.dequant');
  const widened = bf16ArrayToF32(out.data);
  assert.equal(maxAbsDiff(widened, ref), 0);
  assert.deepStrictEqual(widened, ref);
});
