import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, writeFile } from 'node:fs/promises';
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

test('a line that is not UTF-8 is refused with file and line number', async () => {
  const path = await jsonlFile([{ text: 'a' }]);
  await appendFile(path, Buffer.from([0x7b, 0x22, 0x74, 0x65, 0x78, 0x74, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d, 0x0a]));
  await assert.rejects(readJsonl(path), { name: 'DataError', message: `${path}:2: the line is not valid UTF-8; save the file as UTF-8, or pass --skip-malformed to skip such lines.` });
});

test('a line over the line limit is refused with file and line number; with skipMalformed it is skipped', async () => {
  const path = await jsonlFile([{ text: 'a' }, { text: 'b'.repeat(100) }, { text: 'c' }]);
  await assert.rejects(readJsonl(path, { maxLineBytes: 64 }), {
    name: 'DataError',
    message: `${path}:2: the line is longer than the line limit of 64 bytes; split the example, raise --max-line-mib, or pass --skip-malformed to skip such lines.`,
  });
  const { records, skipped } = await readJsonl(path, { maxLineBytes: 64, skipMalformed: true });
  assert.deepEqual(records.map((r) => r.line), [1, 3]);
  assert.deepEqual(skipped, [{ line: 2, reason: 'is longer than the line limit of 64 bytes' }]);
});

test('lines longer than the 64 KiB read chunk, CRLF endings and a missing final newline read whole', async () => {
  const long = 'x'.repeat(200_000);
  const path = await jsonlFile([]);
  await writeFile(path, `${JSON.stringify({ text: long })}\r\n${JSON.stringify({ text: 'é' })}`);
  const { records } = await readJsonl(path);
  assert.deepEqual(records, [{ line: 1, value: { text: long } }, { line: 2, value: { text: 'é' } }]);
});

test('a chat message with an unknown role is refused with file, line and the roles there are', async () => {
  const tok = await fixtureTokenizer();
  const path = await jsonlFile([{ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }] }, { messages: [{ role: 'user', content: 'a' }, { role: 'robot', content: 'b' }] }]);
  await assert.rejects(prepareDataset({ path, seqLen: 64, seed: 0 }, tok), {
    name: 'DataError',
    message: `${path}:2: messages[1] has the role "robot"; the roles are system, developer, user, assistant, tool, ipython.`,
  });
});
