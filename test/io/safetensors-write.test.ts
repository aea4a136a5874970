import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { writeSafetensors, type SafetensorsEntry } from '../../src/io/safetensors-writer.js';
import { fixturePath } from '../helpers/fixtures.js';
import { tempDir } from './tmp.js';

const PYTHON_WRITTEN = [
  'tiny-llama-ref.safetensors',
  'tiny-qwen2-ref.safetensors',
  'tiny-llama-bnb-4bit-ref.safetensors',
  'nf4-ref.safetensors',
  'tiny-llama/model.safetensors',
  'tiny-qwen2/model.safetensors',
  'tiny-llama-bnb-4bit/model.safetensors',
  'tiny-llama-lora/adapter_model.safetensors',
  'tiny-llama-lora_qv/adapter_model.safetensors',
  'tiny-llama-rslora/adapter_model.safetensors',
  'tiny-llama-dora/adapter_model.safetensors',
  'tiny-qwen2-lora/adapter_model.safetensors',
  'tiny-qwen2-lora_mlp/adapter_model.safetensors',
];

/** Parsed contents of a file, with the entries deliberately listed in reverse so the writer must do the ordering. */
async function contentsOf(path: string): Promise<{ entries: SafetensorsEntry[]; metadata: Record<string, string>; hasMetadata: boolean }> {
  const st = await SafetensorsFile.open(path);
  try {
    const entries: SafetensorsEntry[] = [];
    for (const name of st.names().reverse()) {
      const { dtype, shape } = st.info(name);
      entries.push({ name, dtype, shape, data: await st.read(name) });
    }
    const raw = await readFile(path);
    const hasMetadata = raw.subarray(8, 24).toString('latin1').startsWith('{"__metadata__"');
    return { entries, metadata: st.metadata, hasMetadata };
  } finally {
    await st.close();
  }
}

for (const file of PYTHON_WRITTEN) {
  test(`re-serialising ${file} reproduces the Python safetensors bytes exactly`, async () => {
    const source = fixturePath(file);
    const { entries, metadata, hasMetadata } = await contentsOf(source);
    const out = join(await tempDir(), 'copy.safetensors');
    await writeSafetensors(out, entries, hasMetadata ? metadata : undefined);
    assert.deepEqual(await readFile(out), await readFile(source));
  });
}

test('data is ordered by dtype (int64, float32, int32, bfloat16, float16, uint8) then name; header lists tensors in that order', async () => {
  const path = join(await tempDir(), 'order.safetensors');
  const bytes = (n: number): Uint8Array => new Uint8Array(n).fill(n);
  await writeSafetensors(path, [
    { name: 'u', dtype: 'uint8', shape: [1], data: bytes(1) },
    { name: 'h', dtype: 'float16', shape: [1], data: bytes(2) },
    { name: 'b', dtype: 'bfloat16', shape: [1], data: bytes(2) },
    { name: 'i', dtype: 'int32', shape: [1], data: bytes(4) },
    { name: 'f2', dtype: 'float32', shape: [1], data: bytes(4) },
    { name: 'f1', dtype: 'float32', shape: [2], data: bytes(8) },
    { name: 'l', dtype: 'int64', shape: [1], data: bytes(8) },
  ]);
  const raw = await readFile(path);
  const expectedHeader =
    '{"l":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},' +
    '"f1":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},' +
    '"f2":{"dtype":"F32","shape":[1],"data_offsets":[16,20]},' +
    '"i":{"dtype":"I32","shape":[1],"data_offsets":[20,24]},' +
    '"b":{"dtype":"BF16","shape":[1],"data_offsets":[24,26]},' +
    '"h":{"dtype":"F16","shape":[1],"data_offsets":[26,28]},' +
    '"u":{"dtype":"U8","shape":[1],"data_offsets":[28,29]}}';
  const padded = expectedHeader.padEnd(Math.ceil(expectedHeader.length / 8) * 8, ' ');
  assert.equal(raw.readBigUInt64LE(0), BigInt(padded.length));
  assert.equal(raw.subarray(8, 8 + padded.length).toString('utf8'), padded);
  assert.deepEqual([...raw.subarray(8 + padded.length)], [8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 4, 4, 4, 4, 4, 4, 4, 4, 2, 2, 2, 2, 1]);
});

test('names sort by UTF-8 bytes (code points), as Rust does, not by UTF-16 units', async () => {
  const path = join(await tempDir(), 'utf8.safetensors');
  const astral = '\u{1F600}';
  const bmpHigh = '\uFF21';
  const empty = new Uint8Array(0);
  await writeSafetensors(path, [
    { name: astral, dtype: 'float32', shape: [0], data: empty },
    { name: bmpHigh, dtype: 'float32', shape: [0], data: empty },
  ]);
  const st = await SafetensorsFile.open(path);
  assert.deepEqual(st.names(), [bmpHigh, astral]);
  await st.close();
});

test('metadata comes first, keeps its key order, and an empty record still writes "__metadata__":{}', async () => {
  const dir = await tempDir();
  const entry: SafetensorsEntry = { name: 'x', dtype: 'float32', shape: [1], data: new Uint8Array(4) };
  await writeSafetensors(join(dir, 'm.safetensors'), [entry], { z: '1', a: 'line\n"quoted"' });
  const header = (await readFile(join(dir, 'm.safetensors'))).subarray(8).toString('utf8');
  assert.ok(header.startsWith('{"__metadata__":{"z":"1","a":"line\\n\\"quoted\\""},"x":{'), header);
  await writeSafetensors(join(dir, 'e.safetensors'), [entry], {});
  assert.ok((await readFile(join(dir, 'e.safetensors'))).subarray(8).toString('utf8').startsWith('{"__metadata__":{},"x":'));
});

test('data given as a function is produced lazily, in file order', async () => {
  const calls: string[] = [];
  const lazy = (name: string, value: number) => async (): Promise<Uint8Array> => {
    calls.push(name);
    return new Uint8Array(new Float32Array([value]).buffer);
  };
  const path = join(await tempDir(), 'lazy.safetensors');
  await writeSafetensors(path, [
    { name: 'b', dtype: 'float32', shape: [1], data: lazy('b', 2) },
    { name: 'a', dtype: 'float32', shape: [1], data: lazy('a', 1) },
  ]);
  assert.deepEqual(calls, ['a', 'b']);
  const st = await SafetensorsFile.open(path);
  assert.deepEqual([...new Float32Array((await st.read('b')).buffer)], [2]);
  await st.close();
});

test('a wrong byte count fails, leaves the previous file intact and no temporary file behind', async () => {
  const dir = await tempDir();
  const path = join(dir, 'model.safetensors');
  await writeFile(path, 'previous contents');
  await assert.rejects(
    writeSafetensors(path, [
      { name: 'a', dtype: 'float32', shape: [1], data: new Uint8Array(4) },
      { name: 'w', dtype: 'float32', shape: [2, 2], data: new Uint8Array(12) },
    ]),
    /Tensor "w" \(float32 \[2, 2\]\) needs 16 bytes but 12 were given; .*model\.safetensors was not written\./,
  );
  assert.equal(await readFile(path, 'utf8'), 'previous contents');
  assert.deepEqual(await readdir(dir), ['model.safetensors']);
});

test('an error thrown while producing data also leaves no temporary file', async () => {
  const dir = await tempDir();
  const path = join(dir, 'adapter_model.safetensors');
  await assert.rejects(
    writeSafetensors(path, [{ name: 'a', dtype: 'float32', shape: [1], data: () => Promise.reject(new Error('device lost')) }]),
    /device lost/,
  );
  assert.deepEqual(await readdir(dir), []);
});

test('duplicate names and the reserved __metadata__ name are refused', async () => {
  const path = join(await tempDir(), 'dup.safetensors');
  const e = (name: string): SafetensorsEntry => ({ name, dtype: 'uint8', shape: [1], data: new Uint8Array(1) });
  await assert.rejects(writeSafetensors(path, [e('a'), e('a')]), /Tensor "a" is listed twice/);
  await assert.rejects(writeSafetensors(path, [e('__metadata__')]), /reserves that key/);
});
