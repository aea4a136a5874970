import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AutoTokenizer, TokenizerError } from '../../src/tokenizer/index.js';
import { fixturePath } from '../helpers/fixtures.js';
import { tokenizerFolder } from './tokenizer-folder.js';

type Json = Record<string, any>;

const fixture = async (): Promise<Json> => JSON.parse(await readFile(fixturePath('tiny-llama', 'tokenizer.json'), 'utf8'));

/** Loads the fixture's tokenizer.json changed by `edit`; resolves to the error message (which must name the file), or null. */
async function loadError(edit: (json: Json) => void, file = 'tokenizer.json'): Promise<string | null> {
  const json = await fixture();
  const files: Record<string, unknown> = { 'tokenizer.json': json };
  edit(json);
  const dir = await tokenizerFolder(files);
  try {
    await AutoTokenizer.fromPretrained(dir);
    return null;
  } catch (err) {
    assert.ok(err instanceof TokenizerError, String(err));
    assert.equal(err.path, join(dir, file));
    return err.message.slice(join(dir, file).length);
  }
}

test('a vocabulary id of 1e9 is refused in well under a second, naming the token and the id range', async () => {
  const t0 = performance.now();
  const message = await loadError((j) => (j['model'].vocab['zz'] = 1e9));
  assert.ok(performance.now() - t0 < 500, `took ${performance.now() - t0} ms`);
  assert.equal(message, ': model.vocab["zz"] is 1000000000, not a token id (an integer from 0 to 387, the vocabulary\'s 385 tokens plus 3 added); download or save the tokenizer again.');
});

test('a negative or fractional vocabulary id is refused', async () => {
  assert.match((await loadError((j) => (j['model'].vocab['a'] = -1)))!, /^: model\.vocab\["a"\] is -1, not a token id/);
  assert.match((await loadError((j) => (j['model'].vocab['a'] = 2.5)))!, /^: model\.vocab\["a"\] is 2\.5, not a token id/);
});

test('a vocabulary that is not an object of token to id is refused', async () => {
  assert.equal(await loadError((j) => (j['model'].vocab = 'abc')), ': model.vocab of a BPE model must be an object of token to id, not "abc"; download or save the tokenizer again.');
});

test('an unknown model type is refused with the types that exist', async () => {
  assert.equal(await loadError((j) => (j['model'].type = 'SentencePiece')), ': model.type "SentencePiece" is not a tokenizer model; the types are BPE, WordPiece, WordLevel, Unigram; download or save the tokenizer again.');
});

test('a merge of a token the vocabulary lacks is refused', async () => {
  assert.equal(await loadError((j) => j['model'].merges.push(['qqq', 'a'])), ': model.merges[125] ("qqq" + "a") needs the token "qqq", which model.vocab lacks; download or save the tokenizer again.');
});

test('a merge whose result the vocabulary lacks is refused', async () => {
  assert.equal(await loadError((j) => j['model'].merges.push('a c')), ': model.merges[125] ("a" + "c") needs the token "ac", which model.vocab lacks; download or save the tokenizer again.');
});

test('a merge that is not a pair is refused', async () => {
  assert.equal(await loadError((j) => j['model'].merges.push('a')), ': model.merges[125] is "a", not an "a b" string or an [a, b] pair; download or save the tokenizer again.');
});

test('an added token id outside the vocabulary is refused', async () => {
  assert.equal(await loadError((j) => (j['added_tokens'][0].id = 5000)), ': added_tokens[0] ("<|endoftext|>") has id 5000, not a token id (an integer from 0 to 386); download or save the tokenizer again.');
});

test('a Unigram vocabulary must be [token, score] pairs', async () => {
  const message = await loadError((j) => (j['model'] = { type: 'Unigram', unk_id: 0, vocab: [['<unk>', 0], ['a', -1, 3]] }));
  assert.equal(message, ': model.vocab[1] must be a [token, score] pair; download or save the tokenizer again.');
});

test('a Unigram unk_id outside the vocabulary is refused', async () => {
  const message = await loadError((j) => (j['model'] = { type: 'Unigram', unk_id: 7, vocab: [['<unk>', 0], ['a', -1]] }));
  assert.equal(message, ': model.unk_id 7 is not an index of model.vocab (0 to 1); download or save the tokenizer again.');
});

test('a special token of the wrong type in tokenizer_config.json is refused, naming the field', async () => {
  const dir = await tokenizerFolder({ 'tokenizer_config.json': { eos_token: 5 } });
  const path = join(dir, 'tokenizer_config.json');
  await assert.rejects(AutoTokenizer.fromPretrained(dir), { name: 'TokenizerError', message: `${path}: eos_token must be a token's text or an object with a string "content", not 5; fix or delete that field.` });
});

test('the fixture tokenizer passes the checks unchanged', async () => {
  assert.equal(await loadError(() => {}), null);
});
