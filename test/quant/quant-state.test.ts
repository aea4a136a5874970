import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QuantError } from '../../src/quant/errors.js';
import { dequantizeNf4Weight, quantizeNf4Weight, type Nf4Weight } from '../../src/quant/nf4-weight.js';
import { parseQuantState, serializeQuantState, type NamedRawTensor, type RawTensor } from '../../src/quant/quant-state.js';
import { refF32, refShape, refU8 } from './nf4-ref.js';

async function quantizeW(doubleQuant: boolean): Promise<Nf4Weight> {
  return quantizeNf4Weight({ dtype: 'float32', data: await refF32('W') }, [192, 256], { blocksize: 64, doubleQuant });
}

function byName(tensors: NamedRawTensor[]): Map<string, NamedRawTensor> {
  return new Map(tensors.map((t) => [t.name, t]));
}

function f32Bytes(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

test('a plain NF4 weight serializes to bitsandbytes\' tensors and JSON bytes', async () => {
  const tensors = byName(serializeQuantState('w', await quantizeW(false)));
  assert.deepStrictEqual([...tensors.keys()], ['w', 'w.absmax', 'w.quant_map', 'w.quant_state.bitsandbytes__nf4']);
  assert.deepStrictEqual(tensors.get('w')!.data, await refU8('plain.packed'));
  assert.deepStrictEqual(tensors.get('w')!.shape, await refShape('plain.packed'));
  assert.deepStrictEqual(tensors.get('w.absmax')!.data, f32Bytes(await refF32('plain.state.absmax')));
  assert.deepStrictEqual(tensors.get('w.quant_map')!.data, f32Bytes(await refF32('plain.state.quant_map')));
  assert.deepStrictEqual(tensors.get('w.quant_state.bitsandbytes__nf4')!.data, await refU8('plain.state.quant_state.bitsandbytes__nf4'));
});

test('a double-quantized NF4 weight serializes to bitsandbytes\' tensors and JSON bytes', async () => {
  const tensors = byName(serializeQuantState('w', await quantizeW(true)));
  assert.deepStrictEqual([...tensors.keys()], ['w', 'w.absmax', 'w.quant_map', 'w.nested_absmax', 'w.nested_quant_map', 'w.quant_state.bitsandbytes__nf4']);
  assert.deepStrictEqual(tensors.get('w')!.data, await refU8('nested.packed'));
  assert.deepStrictEqual(tensors.get('w.absmax')!.data, await refU8('nested.state.absmax'));
  assert.equal(tensors.get('w.absmax')!.dtype, 'uint8');
  assert.deepStrictEqual(tensors.get('w.quant_map')!.data, f32Bytes(await refF32('nested.state.quant_map')));
  assert.deepStrictEqual(tensors.get('w.nested_absmax')!.data, f32Bytes(await refF32('nested.state.nested_absmax')));
  assert.deepStrictEqual(tensors.get('w.nested_quant_map')!.data, f32Bytes(await refF32('nested.state.nested_quant_map')));
  const json = tensors.get('w.quant_state.bitsandbytes__nf4')!.data;
  assert.deepStrictEqual(json, await refU8('nested.state.quant_state.bitsandbytes__nf4'));
  assert.equal(
    new TextDecoder().decode(json),
    '{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [192, 256], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.052047889679670334}',
  );
});

test('parseQuantState reads back what serializeQuantState wrote, and it dequantizes to bitsandbytes\' values', async () => {
  const tensors = byName(serializeQuantState('w', await quantizeW(true)));
  const weight = parseQuantState('w', (name) => tensors.get(name), 'w.safetensors');
  assert.deepStrictEqual(weight.state.shape, [192, 256]);
  const out = dequantizeNf4Weight(weight);
  assert.deepStrictEqual(out.data, await refF32('nested.dequant'));
});

async function nestedTensors(): Promise<Map<string, RawTensor>> {
  return byName(serializeQuantState('w', await quantizeW(true)));
}

function withJson(tensors: Map<string, RawTensor>, json: string): Map<string, RawTensor> {
  const bytes = new TextEncoder().encode(json);
  return new Map(tensors).set('w.quant_state.bitsandbytes__nf4', { dtype: 'uint8', shape: [bytes.length], data: bytes });
}

function assertQuantError(tensors: Map<string, RawTensor>, message: RegExp): void {
  assert.throws(() => parseQuantState('w', (name) => tensors.get(name), 'w.safetensors'), (err: unknown) => {
    assert.ok(err instanceof QuantError, String(err));
    assert.match(err.message, message);
    return true;
  });
}

test('a quant state whose shape disagrees with the packed weight is rejected', async () => {
  const json = '{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [192, 128], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.05}';
  assertQuantError(withJson(await nestedTensors(), json), /^w\.safetensors: the 4-bit weight "w" has 24576 packed bytes \[24576, 1\], but its quant state shape \[192, 128\] needs 12288\.$/);
});

test('an absmax tensor of the wrong length is rejected', async () => {
  const tensors = await nestedTensors();
  tensors.set('w.absmax', { dtype: 'uint8', shape: [700], data: new Uint8Array(700) });
  assertQuantError(tensors, /"w\.absmax" as uint8 \[700\], but its quant state needs uint8 with 768 elements/);
});

test('an fp4 weight is rejected as unsupported', async () => {
  const tensors = new Map(await nestedTensors());
  const state = tensors.get('w.quant_state.bitsandbytes__nf4')!;
  tensors.delete('w.quant_state.bitsandbytes__nf4');
  tensors.set('w.quant_state.bitsandbytes__fp4', state);
  assertQuantError(tensors, /bitsandbytes fp4, which loraforge does not support/);
  const json = '{"quant_type": "fp4", "blocksize": 64, "dtype": "float32", "shape": [192, 256]}';
  assertQuantError(withJson(await nestedTensors(), json), /quant_type "fp4", which loraforge does not support/);
});

test('an unsupported blocksize in the quant state is rejected', async () => {
  const json = '{"quant_type": "nf4", "blocksize": 48, "dtype": "float32", "shape": [192, 256], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.05}';
  assertQuantError(withJson(await nestedTensors(), json), /uses blocksize 48; bitsandbytes 4-bit blocksizes are 32, 64/);
});

test('nested tensors without nested_offset in the JSON are rejected', async () => {
  const json = '{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [192, 256]}';
  assertQuantError(withJson(await nestedTensors(), json), /has nested_absmax but its quant state has no nested_offset/);
});

test('a missing quant state tensor is rejected', async () => {
  const tensors = await nestedTensors();
  tensors.delete('w.quant_state.bitsandbytes__nf4');
  assertQuantError(tensors, /has no "w\.quant_state\.bitsandbytes__nf4" tensor/);
});

test('malformed quant-state JSON is rejected', async () => {
  assertQuantError(withJson(await nestedTensors(), '{"quant_type": "nf4", '), /is not valid JSON/);
  assertQuantError(withJson(await nestedTensors(), '{"quant_type": "nf4", "blocksize": 64, "dtype": "int8", "shape": [192, 256]}'), /has dtype "int8"/);
});
