import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collate, epochBatches, IGNORE_INDEX, packExamples, prepareDataset } from '../../src/data/index.js';
import { fixtureTokenizer, jsonlFile } from './helpers.js';

test('examples longer than seqLen are truncated, and the summary counts them', async () => {
  const tok = await fixtureTokenizer();
  const path = await jsonlFile([{ text: 'a b c d e f g h i j k l m n o p' }, { text: 'short' }]);
  const data = await prepareDataset({ path, seqLen: 8, seed: 0 }, tok);
  assert.deepEqual(data.train.examples.map((e) => e.inputIds.length), [8, tok.encode('short').length + 1]);
  assert.equal(data.summary.truncated, 1);
});

test('an example whose completion is cut off entirely is left out and counted', async () => {
  const tok = await fixtureTokenizer();
  const path = await jsonlFile([{ prompt: 'a long prompt that fills the window', completion: 'x' }, { prompt: 'q', completion: 'a' }]);
  const data = await prepareDataset({ path, seqLen: 4, seed: 0 }, tok);
  assert.equal(data.train.examples.length, 1);
  assert.equal(data.summary.withoutTargets, 1);
});

test('packing joins consecutive examples up to seqLen without splitting any', () => {
  const ex = (n: number) => ({ inputIds: Array(n).fill(n), labels: Array(n).fill(n) });
  const rows = packExamples([ex(3), ex(4), ex(2), ex(6), ex(1)], 8);
  assert.deepEqual(rows.map((r) => r.inputIds), [[3, 3, 3, 4, 4, 4, 4], [2, 2, 6, 6, 6, 6, 6, 6], [1]]);
});

test('a validation split holds out a seeded share of the records', async () => {
  const tok = await fixtureTokenizer();
  const path = await jsonlFile(Array.from({ length: 20 }, (_, i) => ({ prompt: `q${i}`, completion: `a${i}` })));
  const a = await prepareDataset({ path, seqLen: 32, seed: 5, validationSplit: 0.25 }, tok);
  const b = await prepareDataset({ path, seqLen: 32, seed: 5, validationSplit: 0.25 }, tok);
  assert.equal(a.eval!.examples.length, 5);
  assert.equal(a.train.examples.length, 15);
  assert.deepEqual(a.eval!.records, b.eval!.records);
  const held = new Set(a.eval!.records.map((r) => JSON.stringify(r)));
  assert.ok(a.train.records.every((r) => !held.has(JSON.stringify(r))));
});

test('collate pads on the right: pad id as input, -100 as label, 0 in the attention mask', () => {
  const b = collate([{ inputIds: [5, 6, 7], labels: [-100, 6, 7] }, { inputIds: [8], labels: [8] }], 0);
  assert.deepEqual(b.inputIds, [[5, 6, 7], [8, 0, 0]]);
  assert.deepEqual(b.labels, [[-100, 6, 7], [8, IGNORE_INDEX, IGNORE_INDEX]]);
  assert.deepEqual(b.attentionMask, [[1, 1, 1], [1, 0, 0]]);
  assert.equal(b.targetTokens, 2);
  assert.equal(b.tokens, 4);
  assert.equal(collate([{ inputIds: [1, 2], labels: [1, 2] }], 0).attentionMask, undefined);
});

test('the epoch order is a seeded permutation that changes from epoch to epoch', () => {
  const e0 = epochBatches(10, 3, 7, 0);
  assert.deepEqual(e0, epochBatches(10, 3, 7, 0));
  assert.deepEqual(e0.map((b) => b.length), [3, 3, 3, 1]);
  assert.deepEqual(e0.flat().sort((x, y) => x - y), [...Array(10).keys()]);
  assert.notDeepEqual(epochBatches(10, 3, 7, 1), e0);
  assert.deepEqual(epochBatches(4, 2, 7, 0, false), [[0, 1], [2, 3]]);
});
