import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeTensor } from '../../src/io/decode.js';

test('float32 bytes become a Float32Array view over the same memory', () => {
  const bytes = new Uint8Array(new Float32Array([1.5, -2, 0.25]).buffer);
  const values = decodeTensor('float32', bytes);
  assert.ok(values instanceof Float32Array);
  assert.deepEqual([...values], [1.5, -2, 0.25]);
  assert.equal(values.buffer, bytes.buffer);
});

test('bfloat16 and float16 stay 16-bit patterns in a Uint16Array', () => {
  // bf16 0x3fc0 = 1.5, f16 0x3e00 = 1.5 (little-endian bytes)
  assert.deepEqual([...decodeTensor('bfloat16', new Uint8Array([0xc0, 0x3f]))], [0x3fc0]);
  assert.deepEqual([...decodeTensor('float16', new Uint8Array([0x00, 0x3e]))], [0x3e00]);
});

test('int64 becomes a BigInt64Array, int32 an Int32Array, uint8 the bytes themselves', () => {
  assert.deepEqual([...decodeTensor('int64', new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0, 0, 0, 0, 0]))], [-1n, 7n]);
  assert.deepEqual([...decodeTensor('int32', new Uint8Array([0x9c, 0xff, 0xff, 0xff]))], [-100]);
  const u8 = new Uint8Array([1, 2, 3]);
  assert.equal(decodeTensor('uint8', u8), u8);
});

test('bytes that start off an element boundary are copied into an aligned buffer', () => {
  const backing = new Uint8Array(9);
  backing.set(new Uint8Array(new Float32Array([3, 4]).buffer), 1);
  const values = decodeTensor('float32', backing.subarray(1));
  assert.deepEqual([...values], [3, 4]);
  assert.notEqual(values.buffer, backing.buffer);
});

test('a byte count that is not a whole number of elements is refused', () => {
  assert.throws(() => decodeTensor('float32', new Uint8Array(6)), /A float32 tensor needs a multiple of 4 bytes, got 6\./);
});
