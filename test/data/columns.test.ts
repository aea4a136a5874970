import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataError, mapColumns, parseColumnMapping, prepareDataset } from '../../src/data/index.js';
import { fixtureTokenizer, jsonlFile } from './helpers.js';

test('--data-columns text is field=column pairs', () => {
  assert.deepEqual(parseColumnMapping('prompt=question, completion=answer'), { prompt: 'question', completion: 'answer' });
});

test('a pair without "=" is refused quoting the pair', () => {
  assert.throws(() => parseColumnMapping('prompt=question,answer'), (e: Error) => {
    assert.ok(e instanceof DataError);
    assert.equal(e.message, '--data-columns must be field=column pairs separated by commas, such as prompt=question,completion=answer; got "answer".');
    return true;
  });
});

test('a field no format reads is refused with the fields that exist', () => {
  assert.throws(() => parseColumnMapping('question=q'), /^DataError: --data-columns names the field "question", which no data format reads; the fields are text, prompt, completion, messages, conversations, instruction, input, output\.$/);
});

test('a field mapped twice is refused', () => {
  assert.throws(() => parseColumnMapping('text=a,text=b'), /^DataError: --data-columns maps the field "text" twice; give it one column\.$/);
});

test('mapped fields take their column values; the other columns stay', () => {
  assert.deepEqual(mapColumns({ question: 'Q', answer: 'A', id: 3 }, { prompt: 'question', completion: 'answer' }, 'f:1'), { question: 'Q', answer: 'A', id: 3, prompt: 'Q', completion: 'A' });
});

test('a mapped column the record lacks is one sentence naming it and listing the columns present', () => {
  assert.throws(() => mapColumns({ query: 'Q', answer: 'A' }, { prompt: 'question' }, 'd.jsonl:1'), (e: Error) => {
    assert.equal(e.message, 'd.jsonl:1: --data-columns maps prompt to the column "question", which is not there; the columns are "query", "answer".');
    return true;
  });
});

test('a JSONL file with other column names trains as prompt/completion through the mapping', async () => {
  const tok = await fixtureTokenizer();
  const path = await jsonlFile([{ question: 'Q: 2+2?', answer: ' 4' }, { question: 'Q: 3+3?', answer: ' 6' }]);
  const data = await prepareDataset({ path, seqLen: 64, seed: 0, columns: { prompt: 'question', completion: 'answer' } }, tok);
  assert.equal(data.format, 'prompt_completion');
  assert.deepEqual(data.train.records, [
    { kind: 'completion', prompt: 'Q: 2+2?', completion: ' 4' },
    { kind: 'completion', prompt: 'Q: 3+3?', completion: ' 6' },
  ]);
});
