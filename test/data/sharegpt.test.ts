import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detectFormat, IGNORE_INDEX, normalizeRecord, prepareDataset, tokenizeExample } from '../../src/data/index.js';
import { fixtureTokenizer, jsonlFile } from './helpers.js';

const CONVERSATION = [
  { from: 'system', value: 'Be terse.' },
  { from: 'human', value: 'Hi' },
  { from: 'gpt', value: 'Hello.' },
  { from: 'human', value: 'Bye' },
  { from: 'gpt', value: 'Later.' },
];

/** CONVERSATION as the chat messages it stands for. */
const MESSAGES = [
  { role: 'system', content: 'Be terse.' },
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello.' },
  { role: 'user', content: 'Bye' },
  { role: 'assistant', content: 'Later.' },
];

test('a record with "conversations" is detected as ShareGPT', () => {
  assert.equal(detectFormat({ conversations: [], id: 'x' }, 'f:1'), 'sharegpt');
});

test('ShareGPT speakers become chat roles: system, human -> user, gpt -> assistant', () => {
  assert.deepEqual(normalizeRecord({ conversations: CONVERSATION }, 'sharegpt', 'f:1'), { kind: 'chat', messages: MESSAGES });
});

test('a ShareGPT conversation renders with the chat template and trains on the gpt turns only', async () => {
  const tok = await fixtureTokenizer();
  const ex = tokenizeExample(normalizeRecord({ conversations: CONVERSATION }, 'sharegpt', 'f:1'), tok);
  assert.deepEqual(ex.inputIds, tok.applyChatTemplate(MESSAGES));
  assert.equal(tok.decode(ex.inputIds.filter((_, i) => ex.labels[i] !== IGNORE_INDEX)), 'Hello.<|im_end|>\nLater.<|im_end|>\n');
});

test('a ShareGPT JSONL file is read with its format detected', async () => {
  const tok = await fixtureTokenizer();
  const path = await jsonlFile([{ id: 'a', conversations: CONVERSATION }, { id: 'b', conversations: CONVERSATION.slice(1, 3) }]);
  const data = await prepareDataset({ path, seqLen: 256, seed: 0 }, tok);
  assert.equal(data.format, 'sharegpt');
  assert.equal(data.train.examples.length, 2);
  assert.deepEqual(data.train.records[1], { kind: 'chat', messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello.' }] });
});

test('an unknown ShareGPT speaker is named with the speakers that are accepted', () => {
  assert.throws(
    () => normalizeRecord({ conversations: [{ from: 'bot', value: 'x' }] }, 'sharegpt', 'd.jsonl:2'),
    /^DataError: d\.jsonl:2: conversations\[0\] has "from": "bot"; ShareGPT speakers are system, human, user, gpt, assistant\.$/,
  );
});

test('role/content turns under "conversations" point to --data-columns messages=conversations', () => {
  assert.throws(
    () => normalizeRecord({ conversations: [{ role: 'user', content: 'x' }] }, 'sharegpt', 'd.jsonl:1'),
    /^DataError: d\.jsonl:1: conversations\[0\] must be an object with string "from" and "value" \(for \{"role", "content"\} turns, map the column with --data-columns messages=conversations\)\.$/,
  );
  assert.throws(() => normalizeRecord({ conversations: [] }, 'sharegpt', 'd.jsonl:1'), /^DataError: d\.jsonl:1: "conversations" must be a non-empty list of \{"from", "value"\} objects\.$/);
});
