import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeAtMost } from '../../src/data/bounded-encode.js';
import { tokenizeExample } from '../../src/data/index.js';
import { fixtureTokenizer } from './helpers.js';

test('the first tokens of a long text are those of its whole encoding, for texts with and without spaces', async () => {
  const tok = await fixtureTokenizer();
  const texts = ['hello world, the cat sat on a mat. '.repeat(2000), 'abcdgkpwx'.repeat(5000), '日本語のテキスト😀 '.repeat(3000)];
  for (const text of texts) {
    const whole = tok.encode(text, { addSpecialTokens: true });
    for (const limit of [1, 7, 100, 513]) assert.deepEqual(encodeAtMost(tok, text, true, limit), whole.slice(0, limit), `${text.slice(0, 12)}... limit ${limit}`);
  }
});

test('a text shorter than the limit is encoded whole', async () => {
  const tok = await fixtureTokenizer();
  assert.deepEqual(encodeAtMost(tok, 'ab cd', false, 100), tok.encode('ab cd', { addSpecialTokens: false }));
});

test('tokenizeExample with maxTokens keeps the first tokens and labels of the whole example', async () => {
  const tok = await fixtureTokenizer();
  const ex = { kind: 'completion' as const, prompt: 'ab> ', completion: 'dc ba '.repeat(3000) };
  const whole = tokenizeExample(ex, tok);
  const cut = tokenizeExample(ex, tok, { maxTokens: 65 });
  assert.deepEqual(cut, { inputIds: whole.inputIds.slice(0, 65), labels: whole.labels.slice(0, 65) });
});
