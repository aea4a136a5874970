import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { FormatError } from '../../src/io/errors.js';
import { fixturePath, readFixtureMetadata, readFixtureTensor } from '../helpers/fixtures.js';

const TINY_LLAMA = fixturePath('tiny-llama', 'model.safetensors');

test('open parses the header: metadata, names in header order, dtype, shape and absolute offsets', async () => {
  const st = await SafetensorsFile.open(TINY_LLAMA);
  try {
    assert.equal(st.path, TINY_LLAMA);
    assert.deepEqual(st.metadata, { format: 'pt' });
    const names = st.names();
    assert.equal(names.length, 21);
    assert.deepEqual(names.slice(0, 3), ['lm_head.weight', 'model.embed_tokens.weight', 'model.layers.0.input_layernorm.weight']);
    assert.equal(names.at(-1), 'model.norm.weight');
    // Header length 2136, so data starts at byte 8 + 2136.
    assert.deepEqual(st.info('lm_head.weight'), {
      name: 'lm_head.weight',
      dtype: 'float32',
      shape: [384, 64],
      dataOffset: 2144,
      byteLength: 98304,
    });
    assert.equal(st.info('model.norm.weight').dataOffset, 2144 + 541696);
    assert.equal(st.has('lm_head.weight'), true);
    assert.equal(st.has('lm_head.bias'), false);
  } finally {
    await st.close();
  }
});

test('read returns the tensor bytes in a fresh ArrayBuffer at offset 0', async () => {
  const st = await SafetensorsFile.open(TINY_LLAMA);
  try {
    const bytes = await st.read('lm_head.weight');
    assert.equal(bytes.byteOffset, 0);
    assert.equal(bytes.buffer.byteLength, 98304);
    const values = new Float32Array(bytes.buffer);
    assert.deepEqual([...values.slice(0, 4)], [0.04145636409521103, 0.04028481990098953, -0.19637413322925568, 0.07519286870956421]);
    const whole = await readFile(TINY_LLAMA);
    assert.deepEqual(bytes, new Uint8Array(whole.subarray(2144, 2144 + 98304)));
    assert.deepEqual([...new Float32Array((await st.read('model.norm.weight')).buffer).slice(0, 3)], [1, 1, 1]);
  } finally {
    await st.close();
  }
});

test('concurrent reads of different tensors return their own bytes', async () => {
  const st = await SafetensorsFile.open(TINY_LLAMA);
  try {
    const names = st.names();
    const all = await Promise.all(names.map((n) => st.read(n)));
    const whole = await readFile(TINY_LLAMA);
    names.forEach((n, i) => {
      const { dataOffset, byteLength } = st.info(n);
      assert.deepEqual(all[i], new Uint8Array(whole.subarray(dataOffset, dataOffset + byteLength)), n);
    });
  } finally {
    await st.close();
  }
});

test('bfloat16, uint8 and int64 tensors are typed from the header', async () => {
  const bf16 = await readFixtureTensor('tiny-llama-bnb-4bit/model.safetensors', 'lm_head.weight');
  assert.equal(bf16.dtype, 'bfloat16');
  assert.deepEqual(bf16.shape, [384, 64]);
  assert.ok(bf16.data instanceof Uint16Array);
  assert.deepEqual([...bf16.data.slice(0, 4)], [15658, 15653, 48713, 15770]);

  const ids = await readFixtureTensor('tiny-llama-ref.safetensors', 'input_ids');
  assert.equal(ids.dtype, 'int64');
  assert.deepEqual(ids.shape, [3, 24]);
  assert.deepEqual([...ids.data.slice(0, 4)], [84n, 49n, 13n, 254n]);

  const st = await SafetensorsFile.open(fixturePath('tiny-llama-bnb-4bit', 'model.safetensors'));
  try {
    const packed = st.info('model.layers.0.self_attn.q_proj.weight');
    assert.equal(packed.dtype, 'uint8');
  } finally {
    await st.close();
  }
});

test('metadata strings come back as written, including JSON-in-a-string values', async () => {
  const meta = await readFixtureMetadata('tiny-llama-ref.safetensors');
  assert.deepEqual(Object.keys(meta), ['transformers', 'lora_variants', 'peft', 'torch']);
  assert.equal(meta.transformers, '5.17.0');
  const variants = JSON.parse(meta.lora_variants!) as Record<string, { r: number }>;
  assert.equal(variants.lora!.r, 8);
  assert.equal(variants.lora_qv!.r, 4);
});

test('a file without __metadata__ has empty metadata', async () => {
  assert.deepEqual(await readFixtureMetadata('tiny-llama-bnb-4bit-ref.safetensors'), {});
});

test('info of an absent tensor names the tensor and the file', async () => {
  const st = await SafetensorsFile.open(TINY_LLAMA);
  try {
    assert.throws(() => st.info('model.layers.9.mlp.up_proj.weight'), (err: unknown) => {
      assert.ok(err instanceof FormatError);
      assert.match(err.message, /"model\.layers\.9\.mlp\.up_proj\.weight"/);
      assert.ok(err.message.includes(TINY_LLAMA));
      return true;
    });
    await assert.rejects(st.read('nope'), FormatError);
  } finally {
    await st.close();
  }
});

test('read after close fails with a message naming the file', async () => {
  const st = await SafetensorsFile.open(TINY_LLAMA);
  await st.close();
  await assert.rejects(st.read('lm_head.weight'), /already closed/);
  await st.close();
});
