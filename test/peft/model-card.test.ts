// PEFT's PeftModel.create_or_update_model_card (peft_model.py), checked against README.md files PEFT 0.21 wrote.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ADAPTER_CONFIG_NAME, getPeftModel, MODEL_CARD_NAME, modelCardText, PeftModel } from '../../src/peft/index.js';
import { fixturePath } from '../helpers/fixtures.js';
import { adapterDir, loadBase, tempDir } from './helpers.js';

const FIXTURE_CARD = () => readFile(join(fixturePath('tiny-llama-peftx-patterns'), 'README.md'), 'utf8');

test('savePretrained writes PEFT\'s README.md byte for byte when the base model has no name (the fixtures\' case)', async () => {
  const dir = await tempDir();
  const peft = await PeftModel.fromPretrained(await loadBase('tiny-llama'), adapterDir('tiny-llama', 'lora'));
  await peft.savePretrained(dir);
  assert.equal(await readFile(join(dir, MODEL_CARD_NAME), 'utf8'), await FIXTURE_CARD());
});

test('the card names the base model in base_model and the base_model:adapter tag, as PyYAML quotes them', async () => {
  const card = modelCardText({ baseModel: 'meta-llama/Llama-3.2-1B' });
  assert.ok(card.startsWith('---\nbase_model: meta-llama/Llama-3.2-1B\nlibrary_name: peft\npipeline_tag: text-generation\ntags:\n- base_model:adapter:meta-llama/Llama-3.2-1B\n- lora\n- transformers\n---\n'));
  assert.match(modelCardText({ baseModel: 'true' }), /^---\nbase_model: 'true'\n/);
  assert.ok(card.endsWith('### Framework versions\n\n- PEFT 0.21.0'));
});

test('base_model_name_or_path is written to adapter_config.json and to the card', async () => {
  const dir = await tempDir();
  const peft = getPeftModel(await loadBase('tiny-llama'), { targetModules: ['q_proj'], baseModelNameOrPath: 'org/tiny' });
  await peft.savePretrained(dir);
  const config = JSON.parse(await readFile(join(dir, ADAPTER_CONFIG_NAME), 'utf8')) as Record<string, unknown>;
  assert.equal(config['base_model_name_or_path'], 'org/tiny');
  assert.match(await readFile(join(dir, MODEL_CARD_NAME), 'utf8'), /^---\nbase_model: org\/tiny\n[^]*- base_model:adapter:org\/tiny\n/);
});

test('an existing README.md is kept, with the PEFT version line added once', async () => {
  const dir = await tempDir();
  await writeFile(join(dir, MODEL_CARD_NAME), '# My adapter\n');
  const peft = getPeftModel(await loadBase('tiny-llama'), { targetModules: ['q_proj'] });
  await peft.savePretrained(dir);
  await peft.savePretrained(dir);
  assert.equal(await readFile(join(dir, MODEL_CARD_NAME), 'utf8'), '# My adapter\n### Framework versions\n\n- PEFT 0.21.0');
});
