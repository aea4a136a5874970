import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collate, epochBatches, IGNORE_INDEX, packExamples, prepareDataset } from '../../src/data/index.js';
import { fixtureTokenizer, jsonlFile } from './helpers.js';
import { seededValues } from '../helpers/numeric.js';

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

test('packing is first-fit decreasing: longest first, each into the first row with room, no example split', () => {
  const ex = (n: number) => ({ inputIds: Array(n).fill(n), labels: Array(n).fill(n) });
  const rows = packExamples([ex(3), ex(4), ex(2), ex(6), ex(1)], 8);
  assert.deepEqual(rows.map((r) => r.inputIds), [[6, 6, 6, 6, 6, 6, 2, 2], [4, 4, 4, 4, 3, 3, 3, 1]]);
  assert.deepEqual(rows.map((r) => r.segmentLengths), [[6, 2], [4, 3, 1]]);
  assert.throws(() => packExamples([ex(9)], 8), /an example of 9 tokens cannot be packed into rows of 8/);
});

test('bin packing matches a plain first-fit-decreasing over 2,000 seeded examples, deterministically', () => {
  const lengths = Array.from(seededValues(2000, 23), (v) => 1 + Math.floor(Math.abs(v) ** 3 * 511));
  const exs = lengths.map((n, i) => ({ inputIds: Array.from({ length: n }, (_, t) => i * 1000 + t), labels: Array.from({ length: n }, (_, t) => (t % 3 ? t : IGNORE_INDEX)) }));
  const seqLen = 512;
  const rows = packExamples(exs, seqLen);
  assert.deepEqual(packExamples(exs, seqLen), rows);
  // The reference: the textbook loop over every open row.
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b]! - lengths[a]! || a - b);
  const bins: number[][] = [];
  const room: number[] = [];
  for (const i of order) {
    const r = room.findIndex((x) => x >= lengths[i]!);
    if (r === -1) {
      bins.push([i]);
      room.push(seqLen - lengths[i]!);
    } else {
      bins[r]!.push(i);
      room[r] = room[r]! - lengths[i]!;
    }
  }
  assert.equal(rows.length, bins.length);
  rows.forEach((row, r) => {
    assert.ok(row.inputIds.length <= seqLen);
    assert.deepEqual(row.segmentLengths, bins[r]!.map((i) => lengths[i]!));
    assert.deepEqual(row.inputIds, bins[r]!.flatMap((i) => exs[i]!.inputIds));
    assert.deepEqual(row.labels, bins[r]!.flatMap((i) => exs[i]!.labels));
  });
  // FFD's bound: at most 11/9 of the optimum plus one row (the optimum is at least total / seqLen).
  const total = lengths.reduce((a, b) => a + b, 0);
  assert.ok(rows.length <= Math.ceil((11 / 9) * Math.ceil(total / seqLen)) + 1, `${rows.length} rows for ${total} tokens`);
});

test('collate passes packed rows\' segments on and counts only targets inside each example', () => {
  const b = collate([{ inputIds: [1, 2, 3, 4, 5], labels: [1, 2, 3, 4, 5], segmentLengths: [2, 3] }, { inputIds: [6, 7], labels: [-100, 7] }], 0);
  assert.deepEqual(b.segmentLengths, [[2, 3], [2]]);
  // Row 0: 2 | 4 5 (3 is the second example's first token, nobody's target); row 1: 7.
  assert.equal(b.targetTokens, 4);
  assert.deepEqual(b.attentionMask, [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]);
  assert.throws(() => collate([{ inputIds: [1, 2], labels: [1, 2], segmentLengths: [3] }], 0), /segment lengths add up to 3, not its 2 tokens/);
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
