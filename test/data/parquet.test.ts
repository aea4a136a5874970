import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parquetWriteFile } from 'hyparquet-writer';
import { DataError, prepareDataset, readParquetRows } from '../../src/data/index.js';
import { tempDir } from '../io/tmp.js';
import { fixtureTokenizer } from './helpers.js';
import { writeShareGptParquet, writeStringParquet } from './parquet-fixture.js';

test('a parquet file is read row by row, columns as fields', async () => {
  const path = join(await tempDir(), 'train.parquet');
  await writeStringParquet(path, { prompt: ['Q: 2+2?', 'Q: 3+3?'], completion: [' 4', ' 6'] });
  assert.deepEqual(await readParquetRows(path, path), [
    { prompt: 'Q: 2+2?', completion: ' 4' },
    { prompt: 'Q: 3+3?', completion: ' 6' },
  ]);
});

test('64-bit integer columns come back as numbers', async () => {
  const path = join(await tempDir(), 'ints.parquet');
  parquetWriteFile({ filename: path, columnData: [{ name: 'text', data: ['a'], type: 'STRING' }, { name: 'n', data: [7n], type: 'INT64' }] });
  assert.deepEqual(await readParquetRows(path, path), [{ text: 'a', n: 7 }]);
});

test('--data given a parquet file trains on it, with column mapping and row numbers in errors', async () => {
  const tok = await fixtureTokenizer();
  const path = join(await tempDir(), 'qa.parquet');
  await writeStringParquet(path, { question: ['Q: 2+2?', 'Q: 3+3?'], answer: [' 4', ' 6'] });
  const data = await prepareDataset({ path, seqLen: 64, seed: 0, columns: { prompt: 'question', completion: 'answer' } }, tok);
  assert.equal(data.format, 'prompt_completion');
  assert.deepEqual(data.train.records[1], { kind: 'completion', prompt: 'Q: 3+3?', completion: ' 6' });
  await assert.rejects(
    prepareDataset({ path, seqLen: 64, seed: 0, columns: { prompt: 'query', completion: 'answer' } }, tok),
    (e: Error) => e instanceof DataError && e.message === `${path} row 1: --data-columns maps prompt to the column "query", which is not there; the columns are "question", "answer".`,
  );
});

test('a ShareGPT parquet table (list of structs) is detected and read as chat', async () => {
  const tok = await fixtureTokenizer();
  const path = join(await tempDir(), 'chat.parquet');
  await writeShareGptParquet(path, [
    { id: 'a', conversations: [{ from: 'human', value: 'Hi' }, { from: 'gpt', value: 'Hello.' }] },
    { id: 'b', conversations: [{ from: 'system', value: 'Be terse.' }, { from: 'human', value: 'Bye' }, { from: 'gpt', value: 'Later.' }] },
  ]);
  const data = await prepareDataset({ path, seqLen: 256, seed: 0 }, tok);
  assert.equal(data.format, 'sharegpt');
  assert.deepEqual(data.train.records[1], {
    kind: 'chat',
    messages: [
      { role: 'system', content: 'Be terse.' },
      { role: 'user', content: 'Bye' },
      { role: 'assistant', content: 'Later.' },
    ],
  });
});

test('a file that is not parquet is one sentence naming it', async () => {
  const path = join(await tempDir(), 'broken.parquet');
  await writeFile(path, '{"text": "not parquet"}\n');
  await assert.rejects(readParquetRows(path, path), (e: Error) => {
    assert.ok(e instanceof DataError);
    assert.match(e.message, new RegExp(`^${path.replace(/[.]/g, '\\.')} is not a parquet file loraforge can read \\(.+\\); check that the file is complete, or convert it to JSONL\\.$`));
    return true;
  });
});

test('a folder in the Hub layout is read for the split asked for, the validation data for its own split', async () => {
  const tok = await fixtureTokenizer();
  const dir = await tempDir();
  await writeStringParquet(join(dir, 'data', 'train-00000-of-00001.parquet'), { text: ['one', 'two', 'three'] });
  await writeStringParquet(join(dir, 'data', 'test-00000-of-00001.parquet'), { text: ['held out'] });
  const data = await prepareDataset({ path: dir, seqLen: 64, seed: 0 }, tok);
  assert.deepEqual(data.train.records, [{ kind: 'text', text: 'one' }, { kind: 'text', text: 'two' }, { kind: 'text', text: 'three' }]);
  await assert.rejects(
    prepareDataset({ path: dir, seqLen: 64, seed: 0, validationPath: dir }, tok),
    (e: Error) => e.message === `${dir} has no validation split (its files name the splits test, train); pick one with --validation-data-split.`,
  );
  const held = await prepareDataset({ path: dir, seqLen: 64, seed: 0, validationPath: dir, validationDataSplit: 'test' }, tok);
  assert.deepEqual(held.eval?.records, [{ kind: 'text', text: 'held out' }]);
  const test = await prepareDataset({ path: dir, split: 'test', seqLen: 64, seed: 0 }, tok);
  assert.deepEqual(test.train.records, [{ kind: 'text', text: 'held out' }]);
});
