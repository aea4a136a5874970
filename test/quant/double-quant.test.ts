import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dequantizeNestedAbsmax, doubleQuantizeAbsmax } from '../../src/quant/double-quant.js';
import { dequantizeNf4 } from '../../src/quant/nf4.js';
import { maxAbsDiff, refF32, refU8 } from './nf4-ref.js';

test('double quantization reproduces bitsandbytes absmax codes and nested absmax', async () => {
  const nested = doubleQuantizeAbsmax(await refF32('plain.state.absmax'));
  assert.deepStrictEqual(nested.codes, await refU8('nested.state.absmax'));
  assert.deepStrictEqual(nested.nestedAbsmax, await refF32('nested.state.nested_absmax'));
  assert.deepStrictEqual(nested.nestedCode, await refF32('nested.state.nested_quant_map'));
  assert.equal(nested.nestedBlocksize, 256);
});

test('the nested offset is torch\'s float32 mean of absmax (0.052047889679670334 for W)', async () => {
  const { offset } = doubleQuantizeAbsmax(await refF32('plain.state.absmax'));
  assert.equal(offset, 0.052047889679670334);
});

test('dequantizing a double-quantized weight equals bitsandbytes exactly (max abs diff 0)', async () => {
  const ref = await refF32('nested.dequant');
  const absmax = dequantizeNestedAbsmax(doubleQuantizeAbsmax(await refF32('plain.state.absmax')));
  const out = dequantizeNf4(await refU8('nested.packed'), absmax, ref.length, 64);
  assert.equal(maxAbsDiff(out, ref), 0);
  assert.deepStrictEqual(out, ref);
});
