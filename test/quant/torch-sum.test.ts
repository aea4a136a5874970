import { test } from 'node:test';
import assert from 'node:assert/strict';
import { torchMeanF32, torchSumF32 } from '../../src/quant/torch-sum.js';
import { refF32 } from './nf4-ref.js';

test('torchSumF32 rounds like torch\'s 8-lane cascade, not like a running float32 sum', async () => {
  const absmax = await refF32('plain.state.absmax');
  let running = 0;
  for (const v of absmax) running = Math.fround(running + v);
  assert.equal(torchSumF32(absmax), 39.9727783203125);
  assert.notEqual(running, 39.9727783203125);
});

test('torchMeanF32 divides the float32 sum by the count in float32', () => {
  assert.equal(torchMeanF32(Float32Array.of(1, 2, 4)), Math.fround(7 / 3));
});

test('torchSumF32 sums exactly representable inputs of any length exactly', () => {
  for (const n of [0, 1, 7, 8, 9, 63, 64, 65, 1000, 4099]) {
    const values = Float32Array.from({ length: n }, (_, i) => (i % 13) - 6);
    assert.equal(torchSumF32(values), values.reduce((a, b) => a + b, 0));
  }
});
