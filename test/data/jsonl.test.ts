import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataError, prepareDataset, readJsonl } from '../../src/data/index.js';
import { fixtureTokenizer, jsonlFile } from './helpers.js';

test('a line that is not JSON is reported with file and line number', async () => {
  const path = await jsonlFile([{ text: 'a' }, '', '{"text": "b"', { text: 'c' }]);
  await assert.rejects(readJsonl(path), (e: Error) => e instanceof DataError && e.message.startsWith(`${path}:3: the line is not valid JSON`));
});

test('a line holding JSON that is not an object is reported with file and line number', async () => {
  const path = await jsonlFile([{ text: 'a' }, '[1, 2]']);
  await assert.rejects(readJsonl(path), new RegExp(`^DataError: ${path}:2: the line is not a JSON object`));
});

test('with skipMalformed, bad lines are skipped and listed, blank lines ignored', async () => {
  const path = await jsonlFile([{ text: 'a' }, 'oops', '', '42', { text: 'b' }]);
  const { records, skipped } = await readJsonl(path, { skipMalformed: true });
  assert.deepEqual(records.map((r) => r.line), [1, 5]);
  assert.deepEqual(skipped.map((s) => s.line), [2, 4]);
});

test('a missing file is one sentence naming it', async () => {
  await assert.rejects(readJsonl('/nonexistent/train.jsonl'), /^DataError: \/nonexistent\/train\.jsonl does not exist; pass a JSONL file/);
});

test('a record with a wrong field type is reported with its line; skipMalformed counts it in the summary', async () => {
  const tok = await fixtureTokenizer();
  const strict = await jsonlFile([{ prompt: 'a', completion: 'b' }, { prompt: 'c', completion: 7 }]);
  await assert.rejects(prepareDataset({ path: strict, seqLen: 64, seed: 0 }, tok), new RegExp(`${strict}:2: field "completion" must be a string`));
  const path = await jsonlFile([{ prompt: 'a', completion: 'b' }, { prompt: 'c', completion: 7 }, 'not json']);
  const data = await prepareDataset({ path, seqLen: 64, seed: 0, skipMalformed: true }, tok);
  assert.equal(data.train.examples.length, 1);
  assert.deepEqual(data.summary.skipped.map((s) => s.where), [`${path}:3`, `${path}:2`]);
});

test('records whose keys match no format are refused with the shapes that are supported', async () => {
  const tok = await fixtureTokenizer();
  const path = await jsonlFile([{ question: 'a', answer: 'b' }]);
  await assert.rejects(prepareDataset({ path, seqLen: 64, seed: 0 }, tok), /:1: cannot tell the data format from the keys "question", "answer"/);
});
