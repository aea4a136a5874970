import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dequantizeBlockwise, quantizeBlockwise } from '../../src/quant/blockwise.js';
import { createDynamicMap } from '../../src/quant/dynamic-map.js';
import { QuantError } from '../../src/quant/errors.js';

const CODE = createDynamicMap();

test('quantizeBlockwise maps each block\'s absmax to the code entry 1.0 and its negation to the lowest entry', () => {
  const values = Float32Array.of(3, -3, 0, 1.5);
  const { codes, absmax } = quantizeBlockwise(values, CODE, 256);
  assert.deepStrictEqual(absmax, Float32Array.of(3));
  assert.equal(CODE[codes[0]!], 1);
  assert.equal(codes[1], 0);
  assert.equal(CODE[codes[2]!], 0);
});

test('a value on the midpoint of two code entries takes the lower entry', () => {
  const midpoint = Math.fround((CODE[200]! + CODE[201]!) / 2);
  const { codes } = quantizeBlockwise(Float32Array.of(1, midpoint), CODE, 64);
  assert.equal(codes[1], 200);
});

test('dequantizeBlockwise multiplies the code entry by the block absmax in float32', () => {
  const codes = Uint8Array.of(255, 0, 200);
  const out = dequantizeBlockwise(codes, Float32Array.of(0.3), CODE, 64);
  assert.deepStrictEqual(out, Float32Array.of(Math.fround(CODE[255]! * Math.fround(0.3)), Math.fround(CODE[0]! * Math.fround(0.3)), Math.fround(CODE[200]! * Math.fround(0.3))));
});

test('8-bit blockwise rejects blocksizes bitsandbytes does not support', () => {
  assert.throws(() => quantizeBlockwise(new Float32Array(8), CODE, 32), QuantError);
  assert.throws(() => quantizeBlockwise(new Float32Array(8), CODE, 300), /8-bit blockwise blocksize 300 is not supported/);
});
