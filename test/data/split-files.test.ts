import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitFiles } from '../../src/data/index.js';
import { globRegExp } from '../../src/data/glob.js';

const label = 'org/name';
const flags = { split: '--data-split', dataFiles: '--data-files' };

test('sharded data/<split>-NNNNN-of-NNNNN files are the split, in order', () => {
  const paths = ['README.md', 'data/train-00001-of-00002.parquet', 'data/test-00000-of-00001.parquet', 'data/train-00000-of-00002.parquet'];
  assert.deepEqual(splitFiles(paths, { split: 'train', label, flags }), ['data/train-00000-of-00002.parquet', 'data/train-00001-of-00002.parquet']);
  assert.deepEqual(splitFiles(paths, { split: 'test', label, flags }), ['data/test-00000-of-00001.parquet']);
});

test('files whose path names the split or one of its keywords belong to it', () => {
  const paths = ['train.jsonl', 'dev.jsonl', 'my-test-0.jsonl', 'training/extra.jsonl', 'trainer.jsonl'];
  assert.deepEqual(splitFiles(paths, { split: 'train', label, flags }), ['train.jsonl', 'training/extra.jsonl']);
  assert.deepEqual(splitFiles(paths, { split: 'validation', label, flags }), ['dev.jsonl']);
  assert.deepEqual(splitFiles(paths, { split: 'test', label, flags }), ['my-test-0.jsonl']);
});

test('when no file names a split, every data file is the train split; hidden and other files are ignored', () => {
  assert.deepEqual(splitFiles(['b.parquet', 'a.jsonl', 'notes.txt', '.cache/x.jsonl'], { split: 'train', label, flags }), ['a.jsonl', 'b.parquet']);
});

test('a split the repo lacks is refused with the splits it has', () => {
  assert.throws(
    () => splitFiles(['data/train-00000-of-00001.parquet', 'data/test-00000-of-00001.parquet'], { split: 'validation', label, flags }),
    /^DataError: org\/name has no validation split \(its files name the splits test, train\); pick one with --data-split, or choose files with --data-files\.$/,
  );
  assert.throws(() => splitFiles(['a.jsonl'], { split: 'test', label, flags }), /^DataError: org\/name has no test split \(its files name no split, so all of them are the train split\);/);
});

test('--data-files picks files by glob in place of the conventions', () => {
  const paths = ['en/train.jsonl', 'fr/train.jsonl', 'fr/test.jsonl'];
  assert.deepEqual(splitFiles(paths, { split: 'train', dataFiles: 'fr/*.jsonl', label, flags }), ['fr/test.jsonl', 'fr/train.jsonl']);
  assert.throws(() => splitFiles(paths, { split: 'train', dataFiles: 'de/*', label, flags }), /^DataError: --data-files de\/\* matches none of the data files of org\/name \(en\/train\.jsonl, fr\/test\.jsonl, fr\/train\.jsonl\); change the glob\.$/);
});

test('a repo without parquet or JSONL files is refused', () => {
  assert.throws(() => splitFiles(['data.csv', 'README.md'], { split: 'train', label, flags }), /^DataError: org\/name has no \.parquet or \.jsonl files; loraforge reads datasets stored in those formats\.$/);
});

test('globs: * and ? stay within a segment, ** spans segments, [] and {} as in shells', () => {
  const matches = (glob: string, path: string) => globRegExp(glob).test(path);
  assert.equal(matches('*.jsonl', 'a.jsonl'), true);
  assert.equal(matches('*.jsonl', 'd/a.jsonl'), false);
  assert.equal(matches('**/*.jsonl', 'a.jsonl'), true);
  assert.equal(matches('**/*.jsonl', 'd/e/a.jsonl'), true);
  assert.equal(matches('data/train-?.parquet', 'data/train-1.parquet'), true);
  assert.equal(matches('data/train-[0-4].parquet', 'data/train-7.parquet'), false);
  assert.equal(matches('data/train-[!0-4].parquet', 'data/train-7.parquet'), true);
  assert.equal(matches('{en,fr}/train.jsonl', 'fr/train.jsonl'), true);
  assert.equal(matches('{en,fr}/train.jsonl', 'de/train.jsonl'), false);
  assert.equal(matches('a.b', 'axb'), false);
});
