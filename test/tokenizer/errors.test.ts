import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fixturePath } from '../helpers/fixtures.js';
import { AutoTokenizer, readTokenizerFiles, TokenizerError } from '../../src/tokenizer/index.js';
import { tokenizerFolder } from './tokenizer-folder.js';

/** Loading `dir` must fail with a TokenizerError about `file` (in `dir`) whose message names it and matches `pattern`. */
async function assertLoadFails(dir: string, file: string, pattern: RegExp): Promise<void> {
  const path = join(dir, file);
  await assert.rejects(AutoTokenizer.fromPretrained(dir), (err: unknown) => {
    assert.ok(err instanceof TokenizerError, `expected TokenizerError, got ${String(err)}`);
    assert.equal(err.path, path);
    assert.ok(err.message.startsWith(path), err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

test('a folder without tokenizer.json is reported by path', async () => {
  const dir = await tokenizerFolder({ 'tokenizer.json': null });
  await assertLoadFails(dir, 'tokenizer.json', /does not exist; point fromPretrained at a model folder or Hub id that contains tokenizer\.json\.$/);
});

test('a folder with only a sentencepiece tokenizer.model is told how to convert it', async () => {
  const dir = await tokenizerFolder({ 'tokenizer.json': null, 'tokenizer.model': 'sentencepiece bytes' });
  await assertLoadFails(dir, 'tokenizer.json', /only a slow tokenizer \(tokenizer\.model\).*save_pretrained/);
});

test('tokenizer.json that is not JSON is reported with the parser message', async () => {
  const dir = await tokenizerFolder({ 'tokenizer.json': '{"model": ' });
  await assertLoadFails(dir, 'tokenizer.json', /is not valid JSON \(.+\); download or save it again\.$/);
});

test('tokenizer.json that holds no JSON object is reported', async () => {
  const dir = await tokenizerFolder({ 'tokenizer.json': '[1, 2]' });
  await assertLoadFails(dir, 'tokenizer.json', /must hold a JSON object but holds an array/);
});

test('tokenizer.json that the tokenizers library rejects is reported with its reason', async () => {
  const json = JSON.parse(await readFile(fixturePath('tiny-llama', 'tokenizer.json'), 'utf8'));
  const dir = await tokenizerFolder({ 'tokenizer.json': { ...json, normalizer: { type: 'Bogus' } } });
  await assertLoadFails(dir, 'tokenizer.json', /was rejected by @huggingface\/tokenizers \(Unknown Normalizer type: Bogus\)/);
});

test('tokenizer_config.json that is not JSON is reported by path', async () => {
  const dir = await tokenizerFolder({ 'tokenizer_config.json': '{ bos_token: 1 }' });
  await assertLoadFails(dir, 'tokenizer_config.json', /is not valid JSON/);
});

test('a generation_config.json eos_token_id that is not an id or a list of ids is reported', async () => {
  const dir = await tokenizerFolder({ 'generation_config.json': { eos_token_id: ['</s>'] } });
  await assertLoadFails(dir, 'generation_config.json', /has eos_token_id \["<\/s>"\], which is neither a token id nor a list of token ids/);
});

test('a chat_template field of the wrong shape is reported', async () => {
  const dir = await tokenizerFolder({ 'tokenizer_config.json': { chat_template: { default: 'x' } } });
  await assertLoadFails(dir, 'tokenizer_config.json', /chat_template that is neither a string nor a list/);
});

test('a file passed where the tokenizer folder belongs is reported', async () => {
  const file = join(await tokenizerFolder(), 'tokenizer.json');
  await assert.rejects(readTokenizerFiles(file), (err: unknown) => {
    assert.ok(err instanceof TokenizerError);
    assert.equal(err.message, `${file} is a file, not a folder; pass the folder that holds tokenizer.json.`);
    return true;
  });
});
