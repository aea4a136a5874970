import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AutoModelForCausalLM } from '../../src/models/auto.js';
import '../../src/quant/index.js';
import { QuantError } from '../../src/quant/errors.js';
import { quantizeLinearsInPlace } from '../../src/quant/quantize-in-place.js';
import { saveQuantizedPretrained } from '../../src/quant/save-quantized.js';
import { BNB_DIR, DENSE_DIR, readAllTensors, tempDir } from './bnb-fixture.js';

const reference = await readFile(join(BNB_DIR, 'model.safetensors'));

test('a loaded bnb-4bit model saves back a byte-identical model.safetensors and the same quantization_config', async () => {
  const dir = join(await tempDir(), 'saved');
  await saveQuantizedPretrained(await AutoModelForCausalLM.fromPretrained(BNB_DIR), dir, { copyFilesFrom: BNB_DIR });
  assert.ok((await readFile(join(dir, 'model.safetensors'))).equals(reference));
  const saved = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const original = JSON.parse(await readFile(join(BNB_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepStrictEqual(saved, original);
  assert.deepStrictEqual((await readdir(dir)).sort(), ['chat_template.jinja', 'config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
});

test('a dense model quantized in place saves as the transformers 4-bit checkpoint, sharded when asked', async () => {
  const model = await AutoModelForCausalLM.fromPretrained(DENSE_DIR, { dtype: 'bfloat16' });
  await quantizeLinearsInPlace(model);
  const dir = join(await tempDir(), 'sharded');
  await saveQuantizedPretrained(model, dir, { maxShardBytes: 60_000 });
  const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  const expected = await readAllTensors(join(BNB_DIR, 'model.safetensors'));
  assert.deepStrictEqual(Object.keys(index.weight_map).sort(), [...expected.keys()].sort());
  for (const file of new Set(Object.values(index.weight_map))) {
    for (const [name, t] of await readAllTensors(join(dir, file))) assert.deepStrictEqual(t, expected.get(name), name);
  }
});

test('saving a model without 4-bit layers is refused', async () => {
  const dir = join(await tempDir(), 'dense');
  await assert.rejects(saveQuantizedPretrained(await AutoModelForCausalLM.fromPretrained(DENSE_DIR), dir), (e: unknown) => e instanceof QuantError && /no 4-bit layers; save it with saveModelPretrained/.test(e.message));
});
