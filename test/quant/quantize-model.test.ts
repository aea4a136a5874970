import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { quantizeCommand } from '../../src/cli/quantize.js';
import { writeShardedCheckpoint } from '../../src/io/sharded-writer.js';
import { AutoModelForCausalLM } from '../../src/models/auto.js';
import '../../src/quant/index.js';
import { QuantError } from '../../src/quant/errors.js';
import { quantizeModel } from '../../src/quant/quantize-model.js';
import { BNB_DIR, DENSE_DIR, readAllTensors, referenceInputIds, tempDir } from './bnb-fixture.js';

const reference = await readFile(join(BNB_DIR, 'model.safetensors'));

test('quantize of tiny-llama writes a model.safetensors byte-identical to transformers + bitsandbytes', async () => {
  const out = join(await tempDir(), 'q');
  const result = await quantizeModel(DENSE_DIR, out);
  assert.equal(result.quantizedWeights, 14);
  const produced = await readFile(join(out, 'model.safetensors'));
  assert.ok(produced.equals(reference), 'whole file byte-identical');
});

test('quantize writes transformers\' exact quantization_config and the bf16 dtype into config.json', async () => {
  const out = join(await tempDir(), 'q');
  await quantizeModel(DENSE_DIR, out);
  const text = await readFile(join(out, 'config.json'), 'utf8');
  const refText = await readFile(join(BNB_DIR, 'config.json'), 'utf8');
  const block = (t: string) => t.slice(t.indexOf('"quantization_config"'), t.lastIndexOf('}'));
  assert.equal(block(text), block(refText));
  const written = JSON.parse(text) as Record<string, unknown>;
  const dense = JSON.parse(await readFile(join(DENSE_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepStrictEqual(written, { ...dense, dtype: 'bfloat16', quantization_config: JSON.parse(refText).quantization_config });
});

test('quantize copies the tokenizer, chat template and generation config', async () => {
  const out = join(await tempDir(), 'q');
  const result = await quantizeModel(DENSE_DIR, out);
  for (const name of ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja', 'generation_config.json']) {
    assert.ok((await readFile(join(out, name))).equals(await readFile(join(DENSE_DIR, name))), name);
  }
  assert.equal(result.files.at(-1), 'config.json');
  assert.deepStrictEqual((await readdir(out)).sort(), [...result.files].sort());
});

test('the quantized folder loads and computes what the reference 4-bit checkpoint computes', async () => {
  const out = join(await tempDir(), 'q');
  await quantizeModel(DENSE_DIR, out);
  const inputIds = await referenceInputIds();
  const ours = await (await AutoModelForCausalLM.fromPretrained(out)).run({ inputIds }).logits.data();
  const theirs = await (await AutoModelForCausalLM.fromPretrained(BNB_DIR)).run({ inputIds }).logits.data();
  assert.deepStrictEqual(ours, theirs);
});

test('a sharded model is quantized shard by shard into shards and an index with the same tensors', async () => {
  const root = await tempDir();
  const sharded = join(root, 'sharded');
  await mkdir(sharded);
  const dense = await readAllTensors(join(DENSE_DIR, 'model.safetensors'));
  const entries = [...dense].map(([name, t]) => ({ name, dtype: t.dtype, shape: [...t.shape], data: t.data }));
  await writeShardedCheckpoint(sharded, entries, { maxShardBytes: 200_000 });
  await copyFile(join(DENSE_DIR, 'config.json'), join(sharded, 'config.json'));
  const out = join(root, 'q');
  const result = await quantizeModel(sharded, out);
  assert.deepStrictEqual(result.files, ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors', 'model.safetensors.index.json', 'config.json']);
  const index = JSON.parse(await readFile(join(out, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  const expected = await readAllTensors(join(BNB_DIR, 'model.safetensors'));
  assert.deepStrictEqual(Object.keys(index.weight_map).sort(), [...expected.keys()].sort());
  for (const file of new Set(Object.values(index.weight_map))) {
    for (const [name, t] of await readAllTensors(join(out, file))) assert.deepStrictEqual(t, expected.get(name), name);
  }
});

test('quantize refuses an output folder that already holds a model, and an already-quantized model', async () => {
  const root = await tempDir();
  await writeFile(join(root, 'config.json'), '{}');
  await assert.rejects(quantizeModel(DENSE_DIR, root), (e: unknown) => e instanceof QuantError && /already holds config\.json; choose an empty folder/.test(e.message));
  await assert.rejects(quantizeModel(BNB_DIR, join(root, 'x')), /already has a quantization_config; quantize the dense model instead/);
  await assert.rejects(quantizeModel(DENSE_DIR, join(root, 'y'), { blocksize: 48 }), /NF4 blocksize 48 is not supported/);
});

test('loraforge quantize --model --output exits 0 and writes the checkpoint; bad flags exit 2', async () => {
  const out = join(await tempDir(), 'cli');
  const write = process.stdout.write;
  const errWrite = process.stderr.write;
  const captured: string[] = [];
  process.stdout.write = ((chunk: string) => captured.push(chunk) > 0) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => captured.push(chunk) > 0) as typeof process.stderr.write;
  try {
    assert.equal(await quantizeCommand(['--model', DENSE_DIR, '--output', out]), 0);
    assert.equal(await quantizeCommand(['--model', DENSE_DIR]), 2);
    assert.equal(await quantizeCommand(['--model', DENSE_DIR, '--output', join(out, 'z'), '--dtype', 'int8']), 2);
    assert.equal(await quantizeCommand(['--model', join(out, 'missing'), '--output', join(out, 'w')]), 1);
  } finally {
    process.stdout.write = write;
    process.stderr.write = errWrite;
  }
  assert.ok((await readFile(join(out, 'model.safetensors'))).equals(reference));
  assert.match(captured[0]!, /^Quantized 14 projection weights to NF4; wrote model\.safetensors, /);
  assert.match(captured[1]!, /--output is required/);
  assert.match(captured.at(-1)!, /^loraforge quantize: .*missing.*\n$/);
});
