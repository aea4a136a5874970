import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NF4_BLOCKSIZES, NF4_CODE, dequantizeNf4, quantizeNf4 } from '../../src/quant/nf4.js';
import { QuantError } from '../../src/quant/errors.js';
import { maxAbsDiff, refF32, refU8 } from './nf4-ref.js';

test('quantizeNf4 reproduces bitsandbytes packed codes and absmax (W 192x256, blocksize 64)', async () => {
  const { packed, absmax } = quantizeNf4(await refF32('W'), 64);
  assert.deepStrictEqual(packed, await refU8('plain.packed'));
  assert.deepStrictEqual(absmax, await refF32('plain.state.absmax'));
});

test('dequantizeNf4 equals bitsandbytes dequant exactly (max abs diff 0)', async () => {
  const ref = await refF32('plain.dequant');
  const out = dequantizeNf4(await refU8('plain.packed'), await refF32('plain.state.absmax'), ref.length, 64);
  assert.equal(maxAbsDiff(out, ref), 0);
  assert.deepStrictEqual(out, ref);
});

test('a final partial block is scaled by its own absmax (1000 values)', async () => {
  const { packed, absmax } = quantizeNf4(await refF32('tail.W'), 64);
  assert.deepStrictEqual(packed, await refU8('tail.packed'));
  assert.deepStrictEqual(absmax, await refF32('tail.absmax'));
  assert.deepStrictEqual(dequantizeNf4(packed, absmax, 1000, 64), await refF32('tail.dequant'));
});

test('an odd element count pads the last byte with the code of 0.0 (index 7)', () => {
  const { packed, absmax } = quantizeNf4(Float32Array.of(0.5, -1, 0.25), 64);
  // 0.5 -> 0.4407 (12), -1 -> -1 (0), 0.25 -> 0.2461 (10), pad -> 0 (7).
  assert.deepStrictEqual(packed, Uint8Array.of(0xc0, 0xa7));
  assert.deepStrictEqual(absmax, Float32Array.of(1));
});

test('a value exactly on the midpoint of two levels takes the lower level', () => {
  const midpoint = Math.fround((NF4_CODE[8]! + NF4_CODE[9]!) / 2);
  const above = midpoint + 2 ** -24;
  const { packed } = quantizeNf4(Float32Array.of(midpoint, above, 1, 0), 64);
  assert.deepStrictEqual(packed, Uint8Array.of(0x89, 0xf7));
});

test('an all-zero block stores absmax 0 and dequantizes to zeros', () => {
  const { packed, absmax } = quantizeNf4(new Float32Array(128).fill(0, 0, 64).fill(0.5, 64), 64);
  assert.equal(absmax[0], 0);
  assert.ok(packed.subarray(0, 32).every((b) => b === 0x77));
  assert.ok(dequantizeNf4(packed, absmax, 128, 64).subarray(0, 64).every((v) => v === 0));
});

test('every bitsandbytes 4-bit blocksize round-trips', () => {
  const values = Float32Array.from({ length: 5000 }, (_, i) => Math.sin(i * 0.37));
  for (const blocksize of NF4_BLOCKSIZES) {
    const { packed, absmax } = quantizeNf4(values, blocksize);
    assert.equal(absmax.length, Math.ceil(5000 / blocksize));
    assert.ok(maxAbsDiff(dequantizeNf4(packed, absmax, 5000, blocksize), values) < 0.2);
  }
});

test('an unsupported blocksize is a QuantError naming the accepted sizes', () => {
  for (const blocksize of [16, 48, 100, 8192]) {
    assert.throws(() => quantizeNf4(new Float32Array(256), blocksize), (err: unknown) => {
      assert.ok(err instanceof QuantError);
      assert.match(err.message, new RegExp(`^NF4 blocksize ${blocksize} is not supported; bitsandbytes accepts 32, 64, .*4096\\.$`));
      return true;
    });
  }
});
