import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AutoTokenizer } from '../../src/tokenizer/index.js';
import { fixturePath } from '../helpers/fixtures.js';
import { tokenizerFolder } from './tokenizer-folder.js';

for (const model of ['tiny-llama', 'tiny-qwen2']) {
  test(`${model}: bos, eos and pad are <|endoftext|> (id 0); there is no unk`, async () => {
    const tok = await AutoTokenizer.fromPretrained(fixturePath(model));
    assert.equal(tok.bosToken, '<|endoftext|>');
    assert.equal(tok.eosToken, '<|endoftext|>');
    assert.equal(tok.padToken, '<|endoftext|>');
    assert.equal(tok.bosTokenId, 0);
    assert.equal(tok.eosTokenId, 0);
    assert.equal(tok.padTokenId, 0);
    assert.equal(tok.unkTokenId, null);
    assert.deepEqual(tok.eosTokenIds, [0]);
  });

  test(`${model}: vocabSize counts the 384 ids, added tokens included`, async () => {
    const tok = await AutoTokenizer.fromPretrained(fixturePath(model));
    assert.equal(tok.vocabSize, 384);
  });
}

test('convertTokensToIds and idToToken map between the added tokens and their ids', async () => {
  const tok = await AutoTokenizer.fromPretrained(fixturePath('tiny-llama'));
  assert.equal(tok.convertTokensToIds('<|im_start|>'), 1);
  assert.deepEqual(tok.convertTokensToIds(['<|endoftext|>', '<|im_start|>', '<|im_end|>']), [0, 1, 2]);
  assert.equal(tok.idToToken(2), '<|im_end|>');
  assert.equal(tok.idToToken(223), 'Ġ');
});

test('an unknown token converts to null without an unk token and to the unk id with one', async () => {
  const plain = await AutoTokenizer.fromPretrained(fixturePath('tiny-llama'));
  assert.equal(plain.convertTokensToIds('<|no such token|>'), null);
  assert.equal(plain.idToToken(384), null);
  const withUnk = await AutoTokenizer.fromPretrained(await tokenizerFolder({ 'tokenizer_config.json': { unk_token: '<|im_end|>' } }));
  assert.equal(withUnk.convertTokensToIds('<|no such token|>'), 2);
});

test('eosTokenIds lists generation_config.json eos_token_id entries, then the tokenizer eos', async () => {
  const dir = await tokenizerFolder({
    'tokenizer_config.json': { eos_token: '<|endoftext|>' },
    'generation_config.json': { eos_token_id: [2, 1] },
  });
  const tok = await AutoTokenizer.fromPretrained(dir);
  assert.equal(tok.eosTokenId, 0);
  assert.deepEqual(tok.eosTokenIds, [2, 1, 0]);
});

test('eosTokenIds does not repeat the tokenizer eos when generation_config.json lists it', async () => {
  const dir = await tokenizerFolder({
    'tokenizer_config.json': { eos_token: '<|im_end|>' },
    'generation_config.json': { eos_token_id: 2 },
  });
  const tok = await AutoTokenizer.fromPretrained(dir);
  assert.deepEqual(tok.eosTokenIds, [2]);
});

test('special tokens may be serialized AddedTokens, and special_tokens_map.json overrides tokenizer_config.json', async () => {
  const dir = await tokenizerFolder({
    'tokenizer_config.json': { bos_token: { content: '<|im_start|>', lstrip: false, __type: 'AddedToken' }, eos_token: '<|endoftext|>' },
    'special_tokens_map.json': { eos_token: { content: '<|im_end|>' } },
  });
  const tok = await AutoTokenizer.fromPretrained(dir);
  assert.equal(tok.bosTokenId, 1);
  assert.equal(tok.eosToken, '<|im_end|>');
  assert.equal(tok.eosTokenId, 2);
});

test('a folder without tokenizer_config.json loads, with no special tokens', async () => {
  const tok = await AutoTokenizer.fromPretrained(await tokenizerFolder());
  assert.equal(tok.bosTokenId, null);
  assert.equal(tok.eosTokenId, null);
  assert.equal(tok.padTokenId, null);
  assert.deepEqual(tok.eosTokenIds, []);
});
