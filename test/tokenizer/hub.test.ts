import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AutoTokenizer } from '../../src/tokenizer/index.js';
import { fixturePath } from '../helpers/fixtures.js';
import { referenceIds } from './tokenizer-folder.js';

const COMMIT = '0123456789abcdef0123456789abcdef01234567';

test('fromPretrained takes a Hub id and reads the tokenizer files from the Hugging Face cache', async () => {
  const cacheDir = await mkdtemp(join(tmpdir(), 'loraforge-tokenizer-hub-'));
  after(() => rm(cacheDir, { recursive: true, force: true }));
  const repo = join(cacheDir, 'models--tiny-org--tiny-qwen2');
  await mkdir(join(repo, 'refs'), { recursive: true });
  await writeFile(join(repo, 'refs', 'main'), COMMIT);
  const snapshot = join(repo, 'snapshots', COMMIT);
  await mkdir(snapshot, { recursive: true });
  // Every file the tokenizer asks for is cached, so resolving never reaches the network.
  for (const file of ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja', 'generation_config.json']) {
    await copyFile(fixturePath('tiny-qwen2', file), join(snapshot, file));
  }
  // huggingface_hub records files the repo does not have under .no_exist/<commit>/.
  await mkdir(join(repo, '.no_exist', COMMIT), { recursive: true });
  await writeFile(join(repo, '.no_exist', COMMIT, 'special_tokens_map.json'), '');

  const tok = await AutoTokenizer.fromPretrained('tiny-org/tiny-qwen2', { cacheDir });
  const messages = [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'Explain LoRA in one line.' },
  ];
  assert.deepEqual(tok.applyChatTemplate(messages, { addGenerationPrompt: true }), await referenceIds('tiny-qwen2-ref.safetensors', 'chat_template_ids'));
});
