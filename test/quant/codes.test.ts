import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NF4_CODE } from '../../src/quant/nf4.js';
import { createDynamicMap } from '../../src/quant/dynamic-map.js';
import { refF32 } from './nf4-ref.js';

test('NF4_CODE holds the 16 float32 levels of bitsandbytes', async () => {
  assert.deepStrictEqual(NF4_CODE, await refF32('nf4_code'));
});

test('createDynamicMap() is bit-identical to bitsandbytes create_dynamic_map(signed=True)', async () => {
  assert.deepStrictEqual(createDynamicMap(), await refF32('dynamic_map_signed'));
});

test('createDynamicMap() is sorted, spans [-1, 1] and has 256 entries', () => {
  const map = createDynamicMap();
  assert.equal(map.length, 256);
  assert.equal(map[255], 1);
  assert.ok(map[0]! > -1 && map[0]! < -0.99);
  for (let i = 1; i < map.length; i++) assert.ok(map[i - 1]! <= map[i]!);
});
