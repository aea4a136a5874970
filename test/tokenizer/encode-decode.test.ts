import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { AutoTokenizer } from '../../src/tokenizer/index.js';
import { fixturePath } from '../helpers/fixtures.js';
import { referenceIds, tokenizerFolder } from './tokenizer-folder.js';

const SAMPLE = 'Low-rank adaptation trains A and B; the base W stays frozen.';
const MODELS = ['tiny-llama', 'tiny-qwen2'];

for (const model of MODELS) {
  test(`${model}: encode without special tokens gives the ids transformers gives`, async () => {
    const tok = await AutoTokenizer.fromPretrained(fixturePath(model));
    const expected = await referenceIds(`${model}-ref.safetensors`, 'encode_sample_ids');
    assert.deepEqual(tok.encode(SAMPLE, { addSpecialTokens: false }), expected);
  });

  test(`${model}: decode inverts encode`, async () => {
    const tok = await AutoTokenizer.fromPretrained(fixturePath(model));
    assert.equal(tok.decode(await referenceIds(`${model}-ref.safetensors`, 'encode_sample_ids')), SAMPLE);
  });
}

test('decode(encode(text)) returns text for punctuation, whitespace runs and non-ASCII', async () => {
  const tok = await AutoTokenizer.fromPretrained(fixturePath('tiny-llama'));
  // Space before punctuation would be eaten by clean_up_tokenization_spaces, which transformers leaves off by default.
  const text = "a . b , don 't  two  spaces\n\ttab é 日本語 🙂";
  assert.equal(tok.decode(tok.encode(text)), text);
});

test('special-token text in the input encodes to the special id, not to pieces', async () => {
  const tok = await AutoTokenizer.fromPretrained(fixturePath('tiny-llama'));
  const ids = tok.encode('hi<|im_end|>', { addSpecialTokens: false });
  assert.equal(ids.at(-1), 2);
  assert.equal(ids.filter((id) => id === 2).length, 1);
});

test('addSpecialTokens defaults to true and adds nothing for a ByteLevel post-processor (Qwen2 style)', async () => {
  const tok = await AutoTokenizer.fromPretrained(fixturePath('tiny-qwen2'));
  assert.deepEqual(tok.encode(SAMPLE), tok.encode(SAMPLE, { addSpecialTokens: false }));
});

test('addSpecialTokens adds the bos that a TemplateProcessing post-processor names (Llama style)', async () => {
  const tokenizerJson = JSON.parse(await readFile(fixturePath('tiny-llama', 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
  tokenizerJson['post_processor'] = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<|endoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: '<|endoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { '<|endoftext|>': { id: '<|endoftext|>', ids: [0], tokens: ['<|endoftext|>'] } },
  };
  const tok = await AutoTokenizer.fromPretrained(await tokenizerFolder({ 'tokenizer.json': tokenizerJson }));
  const plain = tok.encode(SAMPLE, { addSpecialTokens: false });
  assert.deepEqual(tok.encode(SAMPLE), [0, ...plain]);
  assert.deepEqual(tok.encode(SAMPLE, { addSpecialTokens: true }), [0, ...plain]);
});

test('skipSpecialTokens drops special tokens from the decoded text', async () => {
  const tok = await AutoTokenizer.fromPretrained(fixturePath('tiny-qwen2'));
  const ids = await referenceIds('tiny-qwen2-ref.safetensors', 'chat_template_ids');
  assert.equal(
    tok.decode(ids),
    '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nExplain LoRA in one line.<|im_end|>\n<|im_start|>assistant\n',
  );
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), 'system\nYou are terse.\nuser\nExplain LoRA in one line.\nassistant\n');
});

test('decode of no ids is the empty string', async () => {
  const tok = await AutoTokenizer.fromPretrained(fixturePath('tiny-llama'));
  assert.equal(tok.decode([]), '');
});

test('decode drops ids that have no token, as the Rust tokenizers do', async () => {
  const tok = await AutoTokenizer.fromPretrained(fixturePath('tiny-llama'));
  const hi = tok.encode('hi', { addSpecialTokens: false });
  assert.equal(tok.decode([...hi, tok.vocabSize, 100_000, -1]), 'hi');
});

test('decode accepts typed arrays', async () => {
  const tok = await AutoTokenizer.fromPretrained(fixturePath('tiny-llama'));
  assert.equal(tok.decode(Int32Array.from(tok.encode(SAMPLE))), SAMPLE);
});
