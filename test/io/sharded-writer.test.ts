import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openCheckpoint } from '../../src/io/checkpoint.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import type { SafetensorsEntry } from '../../src/io/safetensors-writer.js';
import { planShards, writeShardedCheckpoint } from '../../src/io/sharded-writer.js';
import { fixturePath } from '../helpers/fixtures.js';
import { tempDir } from './tmp.js';

const f32 = (name: string, values: number[]): SafetensorsEntry => ({
  name,
  dtype: 'float32',
  shape: [values.length],
  data: new Uint8Array(new Float32Array(values).buffer),
});

test('planShards follows huggingface_hub: an oversized tensor gets its own shard ahead of the one being filled', () => {
  const entries = [f32('a', [1]), f32('b', [2]), f32('c', [3, 3, 3]), f32('d', [4])];
  const plan = planShards(entries, 8).map((shard) => shard.map((e) => e.name));
  assert.deepEqual(plan, [['c'], ['a', 'b'], ['d']]);
  assert.deepEqual(planShards(entries, 1000).map((s) => s.length), [4]);
});

test('sharded save writes model-0000i-of-0000N files and the index exactly as transformers formats it', async () => {
  const dir = await tempDir();
  const result = await writeShardedCheckpoint(dir, [f32('b.weight', [1, 2]), f32('a.weight', [3]), f32('c.bias', [4, 5, 6, 7])], {
    maxShardBytes: 16,
  });
  assert.deepEqual(result, {
    files: ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json'],
    totalSize: 28,
  });
  assert.deepEqual((await readdir(dir)).sort(), result.files);
  assert.equal(
    await readFile(join(dir, 'model.safetensors.index.json'), 'utf8'),
    [
      '{',
      '  "metadata": {',
      '    "total_parameters": 7,',
      '    "total_size": 28',
      '  },',
      '  "weight_map": {',
      '    "a.weight": "model-00001-of-00002.safetensors",',
      '    "b.weight": "model-00001-of-00002.safetensors",',
      '    "c.bias": "model-00002-of-00002.safetensors"',
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  const shard = await SafetensorsFile.open(join(dir, 'model-00001-of-00002.safetensors'));
  assert.deepEqual(shard.metadata, { format: 'pt' });
  assert.deepEqual(shard.names(), ['a.weight', 'b.weight']);
  await shard.close();
});

test('non-ASCII tensor names are escaped in the index as Python json.dumps does', async () => {
  const dir = await tempDir();
  await writeShardedCheckpoint(dir, [f32('é', [1]), f32('\u{1F600}', [2])], { maxShardBytes: 4 });
  const index = await readFile(join(dir, 'model.safetensors.index.json'), 'utf8');
  assert.match(index, /"\\u00e9": "model-00001-of-00002\.safetensors"/);
  assert.match(index, /"\\ud83d\\ude00": "model-00002-of-00002\.safetensors"/);
});

test('a model that fits one shard is saved as model.safetensors without an index', async () => {
  const dir = await tempDir();
  const result = await writeShardedCheckpoint(dir, [f32('w', [1, 2, 3])], { maxShardBytes: 5e9 });
  assert.deepEqual(result, { files: ['model.safetensors'], totalSize: 12 });
  assert.deepEqual(await readdir(dir), ['model.safetensors']);
});

test('saving again removes shards and files of the previous layout that the new one does not replace', async () => {
  const dir = await tempDir();
  await writeShardedCheckpoint(dir, [f32('a', [1]), f32('b', [2]), f32('c', [3])], { maxShardBytes: 4 });
  await writeFile(join(dir, 'config.json'), '{}');
  assert.equal((await readdir(dir)).length, 5);
  await writeShardedCheckpoint(dir, [f32('a', [1]), f32('b', [2])], { maxShardBytes: 4 });
  assert.deepEqual((await readdir(dir)).sort(), [
    'config.json',
    'model-00001-of-00002.safetensors',
    'model-00002-of-00002.safetensors',
    'model.safetensors.index.json',
  ]);
  await writeShardedCheckpoint(dir, [f32('a', [1])], { maxShardBytes: 4 });
  assert.deepEqual((await readdir(dir)).sort(), ['config.json', 'model.safetensors']);
});

test('tiny-llama split into shards reads back tensor for tensor through openCheckpoint', async () => {
  const source = await SafetensorsFile.open(fixturePath('tiny-llama', 'model.safetensors'));
  const dir = await tempDir();
  try {
    const entries: SafetensorsEntry[] = source.names().map((name) => {
      const { dtype, shape } = source.info(name);
      return { name, dtype, shape, data: () => source.read(name) };
    });
    const { files, totalSize } = await writeShardedCheckpoint(dir, entries, { maxShardBytes: 200_000 });
    // lm_head + embed_tokens (2 x 98304) fill shard 1; the two layers (171264 bytes each) take one shard each.
    assert.deepEqual(files, [
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
      'model.safetensors.index.json',
    ]);
    assert.equal(totalSize, 541952);
    const checkpoint = await openCheckpoint(dir);
    try {
      assert.deepEqual([...checkpoint.names()].sort(), [...source.names()].sort());
      for (const name of source.names()) {
        assert.deepEqual(await checkpoint.read(name), await source.read(name), name);
        assert.deepEqual(checkpoint.info(name).shape, source.info(name).shape);
      }
    } finally {
      await checkpoint.close();
    }
  } finally {
    await source.close();
  }
});
