import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alpacaPrompt, detectFormat, IGNORE_INDEX, normalizeRecord, tokenizeExample } from '../../src/data/index.js';
import { fixtureTokenizer } from './helpers.js';

const EOS = 0;

test('formats are detected from the keys of a record', () => {
  assert.equal(detectFormat({ text: 'x' }, 'f:1'), 'text');
  assert.equal(detectFormat({ prompt: 'x', completion: 'y' }, 'f:1'), 'prompt_completion');
  assert.equal(detectFormat({ messages: [] }, 'f:1'), 'messages');
  assert.equal(detectFormat({ instruction: 'x', input: '', output: 'y' }, 'f:1'), 'alpaca');
});

test('text: every token is trained, eos appended', async () => {
  const tok = await fixtureTokenizer();
  const ex = tokenizeExample(normalizeRecord({ text: 'hello world' }, 'text', 'f:1'), tok);
  assert.deepEqual(ex.inputIds, [...tok.encode('hello world'), EOS]);
  assert.deepEqual(ex.labels, ex.inputIds);
});

test('prompt/completion: only the completion and eos carry labels', async () => {
  const tok = await fixtureTokenizer();
  const ex = tokenizeExample(normalizeRecord({ prompt: 'Q: 2+2?', completion: ' 4' }, 'prompt_completion', 'f:1'), tok);
  const prompt = tok.encode('Q: 2+2?', { addSpecialTokens: true });
  const completion = tok.encode(' 4', { addSpecialTokens: false });
  assert.deepEqual(ex.inputIds, [...prompt, ...completion, EOS]);
  assert.deepEqual(ex.labels, [...prompt.map(() => IGNORE_INDEX), ...completion, EOS]);
});

test('trainOnInputs trains on the prompt as well', async () => {
  const tok = await fixtureTokenizer();
  const ex = tokenizeExample(normalizeRecord({ prompt: 'Q', completion: 'A' }, 'prompt_completion', 'f:1'), tok, { trainOnInputs: true });
  assert.deepEqual(ex.labels, ex.inputIds);
});

test('alpaca: the Stanford template is the prompt, output the completion', async () => {
  const tok = await fixtureTokenizer();
  const rec = normalizeRecord({ instruction: 'Add.', input: '2 2', output: '4' }, 'alpaca', 'f:1');
  assert.deepEqual(rec, { kind: 'completion', prompt: alpacaPrompt('Add.', '2 2'), completion: '4' });
  assert.ok(alpacaPrompt('Add.', '2 2').endsWith('### Instruction:\nAdd.\n\n### Input:\n2 2\n\n### Response:\n'));
  assert.ok(alpacaPrompt('Add.', '').endsWith('### Instruction:\nAdd.\n\n### Response:\n'));
  const ex = tokenizeExample(rec, tok);
  assert.equal(ex.labels.filter((l) => l !== IGNORE_INDEX).length, tok.encode('4', { addSpecialTokens: false }).length + 1);
});

test('messages: only assistant turns (content and end-of-turn marker) carry labels', async () => {
  const tok = await fixtureTokenizer();
  const messages = [
    { role: 'system', content: 'Be terse.' },
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: 'Hello.' },
    { role: 'user', content: 'Bye' },
    { role: 'assistant', content: 'Later.' },
  ];
  const ex = tokenizeExample(normalizeRecord({ messages }, 'messages', 'f:1'), tok);
  assert.deepEqual(ex.inputIds, tok.applyChatTemplate(messages));
  const trained = tok.decode(ex.inputIds.filter((_, i) => ex.labels[i] !== IGNORE_INDEX));
  assert.equal(trained, 'Hello.<|im_end|>\nLater.<|im_end|>\n');
  ex.labels.forEach((l, i) => assert.ok(l === IGNORE_INDEX || l === ex.inputIds[i]));
});

test('a malformed messages list is reported with its location', () => {
  assert.throws(() => normalizeRecord({ messages: [{ role: 'user' }] }, 'messages', 'd.jsonl:4'), /^DataError: d\.jsonl:4: messages\[0\] must be an object with string "role" and "content"/);
});
