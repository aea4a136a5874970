import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openCheckpoint, ShardedCheckpoint } from '../../src/io/checkpoint.js';
import { FormatError } from '../../src/io/errors.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { writeSafetensors, type SafetensorsEntry } from '../../src/io/safetensors-writer.js';
import { fixturePath } from '../helpers/fixtures.js';
import { tempDir } from './tmp.js';

const f32 = (name: string, values: number[]): SafetensorsEntry => ({
  name,
  dtype: 'float32',
  shape: [values.length],
  data: new Uint8Array(new Float32Array(values).buffer),
});

/** A folder with two hand-written shards and an index mapping x -> shard 1, y and z -> shard 2. */
async function shardedFolder(weightMap?: Record<string, string>): Promise<string> {
  const dir = await tempDir();
  await writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), [f32('x', [1, 2])], { format: 'pt' });
  await writeSafetensors(join(dir, 'model-00002-of-00002.safetensors'), [f32('y', [3]), f32('z', [4, 5, 6])], { format: 'pt' });
  const map = weightMap ?? { x: 'model-00001-of-00002.safetensors', y: 'model-00002-of-00002.safetensors', z: 'model-00002-of-00002.safetensors' };
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 24 }, weight_map: map }));
  return dir;
}

const floats = (bytes: Uint8Array): number[] => [...new Float32Array(bytes.buffer)];

test('a folder with model.safetensors opens that file', async () => {
  const ckpt = await openCheckpoint(fixturePath('tiny-qwen2'));
  try {
    assert.ok(ckpt instanceof SafetensorsFile);
    assert.equal(ckpt.names().length, 26);
    assert.deepEqual(ckpt.info('model.layers.0.self_attn.q_proj.bias').shape, [64]);
  } finally {
    await ckpt.close();
  }
});

test('a path to a .safetensors file opens that file', async () => {
  const ckpt = await openCheckpoint(fixturePath('tiny-llama-lora', 'adapter_model.safetensors'));
  assert.ok(ckpt.has('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'));
  await ckpt.close();
});

test('weightsName selects another file, such as a PEFT adapter', async () => {
  const ckpt = await openCheckpoint(fixturePath('tiny-llama-lora_qv'), { weightsName: 'adapter_model.safetensors' });
  assert.equal(ckpt.names().length, 8);
  await ckpt.close();
});

test('a sharded folder reads each tensor from the shard its index names', async () => {
  const ckpt = await openCheckpoint(await shardedFolder());
  try {
    assert.ok(ckpt instanceof ShardedCheckpoint);
    assert.deepEqual(ckpt.names(), ['x', 'y', 'z']);
    assert.deepEqual(floats(await ckpt.read('x')), [1, 2]);
    assert.deepEqual(floats(await ckpt.read('z')), [4, 5, 6]);
    // Shard 2's header is 139 bytes of JSON padded to 144; z follows y's 4 bytes.
    assert.deepEqual(ckpt.info('z'), { name: 'z', dtype: 'float32', shape: [3], dataOffset: 8 + 144 + 4, byteLength: 12 });
    assert.match(ckpt.pathOf('z'), /model-00002-of-00002\.safetensors$/);
    assert.throws(() => ckpt.info('w'), (err: unknown) => err instanceof FormatError && /Tensor "w" is not in the checkpoint indexed by .*model\.safetensors\.index\.json/.test(err.message));
  } finally {
    await ckpt.close();
  }
});

test('model.safetensors is preferred over an index, as in transformers', async () => {
  const dir = await shardedFolder();
  await writeSafetensors(join(dir, 'model.safetensors'), [f32('only', [7])]);
  const ckpt = await openCheckpoint(dir);
  assert.deepEqual(ckpt.names(), ['only']);
  await ckpt.close();
});

test('a shard listed in the index but absent is named in the error', async () => {
  const dir = await shardedFolder({ x: 'model-00001-of-00002.safetensors', y: 'model-00003-of-00003.safetensors' });
  await assert.rejects(openCheckpoint(dir), /model-00003-of-00003\.safetensors, listed in .*model\.safetensors\.index\.json, does not exist; download the missing shard again\./);
});

test('a tensor listed in the index but missing from its shard is named in the error', async () => {
  const dir = await shardedFolder({ x: 'model-00001-of-00002.safetensors', q: 'model-00002-of-00002.safetensors' });
  await assert.rejects(openCheckpoint(dir), /Tensor "q" is listed in .* but missing from .*model-00002-of-00002\.safetensors/);
});

test('an index that is not JSON or has no weight_map is rejected', async () => {
  const dir = await tempDir();
  await writeFile(join(dir, 'model.safetensors.index.json'), '{"weight_map": ');
  await assert.rejects(openCheckpoint(dir), /model\.safetensors\.index\.json is not a valid sharded-checkpoint index: it is not JSON/);
  await writeFile(join(dir, 'model.safetensors.index.json'), '{"metadata": {}}');
  await assert.rejects(openCheckpoint(dir), /it has no "weight_map" object/);
});

test('an index whose shard path leaves the folder is rejected', async () => {
  const dir = await shardedFolder({ x: '../outside.safetensors' });
  await assert.rejects(openCheckpoint(dir), /shard "\.\.\/outside\.safetensors" points outside the checkpoint folder/);
});

test('a folder without weights says which files it looked for', async () => {
  const dir = await tempDir();
  await mkdir(join(dir, 'empty'));
  await assert.rejects(openCheckpoint(join(dir, 'empty')), /has neither model\.safetensors nor model\.safetensors\.index\.json/);
  await assert.rejects(openCheckpoint(join(dir, 'nothing-here')), /nothing-here does not exist; pass a model folder or a \.safetensors file\./);
});
