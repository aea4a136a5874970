import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fmaF32 } from '../../src/quant/fma-f32.js';

test('fmaF32 rounds once where a float64 sum would land on a float32 tie', () => {
  // a * b = 2^16 - 2^-30 exactly; c + 2^16 is the midpoint above c, so the exact sum lies just below it.
  const a = Math.fround(2 ** 16 * (1 + 2 ** -23));
  const b = Math.fround(1 - 2 ** -23);
  const c = 2 ** 40 + 2 ** 17;
  assert.equal(Math.fround(a * b + c), 2 ** 40 + 2 ** 18);
  assert.equal(fmaF32(a, b, c), c);
});

test('fmaF32 equals the float32 rounding of a * b + c when no tie is involved', () => {
  const step = Math.fround(0.9 / 64);
  for (let i = 0; i < 64; i++) assert.equal(fmaF32(step, i, Math.fround(0.1)), Math.fround(step * i + Math.fround(0.1)));
});
