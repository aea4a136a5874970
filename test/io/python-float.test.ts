import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pythonFloatRepr } from '../../src/io/python-json.js';

test('pythonFloatRepr writes fixed notation for decimal exponents -4..15, with ".0" on integers', () => {
  assert.equal(pythonFloatRepr(0.052047889679670334), '0.052047889679670334');
  assert.equal(pythonFloatRepr(0.0001), '0.0001');
  assert.equal(pythonFloatRepr(1), '1.0');
  assert.equal(pythonFloatRepr(-2.5), '-2.5');
  assert.equal(pythonFloatRepr(1e15), '1000000000000000.0');
  assert.equal(pythonFloatRepr(123.456), '123.456');
});

test('pythonFloatRepr writes d.ddde±XX outside that range', () => {
  assert.equal(pythonFloatRepr(1e-5), '1e-05');
  assert.equal(pythonFloatRepr(1.5e-7), '1.5e-07');
  assert.equal(pythonFloatRepr(1e16), '1e+16');
  assert.equal(pythonFloatRepr(1.2345678901234568e17), '1.2345678901234568e+17');
  assert.equal(pythonFloatRepr(5e-324), '5e-324');
  assert.equal(pythonFloatRepr(1.7976931348623157e308), '1.7976931348623157e+308');
});

test('pythonFloatRepr writes zeros and non-finite values as json.dumps does', () => {
  assert.equal(pythonFloatRepr(0), '0.0');
  assert.equal(pythonFloatRepr(-0), '-0.0');
  assert.equal(pythonFloatRepr(NaN), 'NaN');
  assert.equal(pythonFloatRepr(Infinity), 'Infinity');
  assert.equal(pythonFloatRepr(-Infinity), '-Infinity');
});
