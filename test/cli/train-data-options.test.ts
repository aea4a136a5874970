// The data flags of `loraforge train`: --data as a file, folder or Hub dataset id, --data-split, --data-files,
// --data-columns and --validation-data-split, each refusal in one sentence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cli, cliStreaming, MODEL, oneSentence, smallDataset, tempDir } from './helpers.js';
import { startFakeHub } from '../io/fake-hub.js';
import { writeStringParquet } from '../data/parquet-fixture.js';

const COMMIT = '0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c';

/** Reversal examples (the fixture tokenizer's letters) under the column names question/answer. */
function reversals(n: number): { question: string[]; answer: string[] } {
  const words = Array.from({ length: n }, (_, i) => 'acdg'.slice(0, 1 + (i % 4)));
  return { question: words.map((w) => `${w}>`), answer: words.map((w) => [...w].reverse().join('')) };
}

function restore(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

test('train --data org/name trains on the Hub dataset\'s train split, mapping its columns, validating on its validation split', async () => {
  const dir = await tempDir();
  const repo = join(dir, 'repo');
  await writeStringParquet(join(repo, 'data', 'train-00000-of-00001.parquet'), reversals(8));
  await writeStringParquet(join(repo, 'data', 'validation-00000-of-00001.parquet'), reversals(3));
  const hub = await startFakeHub({ 'loraforge/reverse': { folder: repo, commit: COMMIT, type: 'dataset' } });
  const cache = join(dir, 'cache');
  const saved = { endpoint: process.env.HF_ENDPOINT, cache: process.env.HF_HUB_CACHE };
  process.env.HF_ENDPOINT = hub.endpoint;
  process.env.HF_HUB_CACHE = cache;
  const args = ['train', '--model', MODEL, '--data', 'loraforge/reverse', '--validation-data', 'loraforge/reverse', '--data-columns', 'prompt=question,completion=answer', '--output', join(dir, 'run'), '--max-steps', '1'];
  const r = await cliStreaming(args, () => {}).finally(() => {
    restore('HF_ENDPOINT', saved.endpoint);
    restore('HF_HUB_CACHE', saved.cache);
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^data: 8 training and 3 held-out prompt_completion examples$/m);
  assert.equal(await readFile(join(cache, 'datasets--loraforge--reverse', 'refs', 'main'), 'utf8'), COMMIT);
});

test('a malformed --data-columns is a usage error quoting the pair, exit code 2', () => {
  const r = cli(['train', '--model', MODEL, '--data', 'd.jsonl', '--data-columns', 'prompt:question']);
  assert.equal(r.code, 2);
  assert.equal(oneSentence(r), 'loraforge: --data-columns must be field=column pairs separated by commas, such as prompt=question,completion=answer; got "prompt:question".');
});

test('--data-split given with a single data file is refused, not ignored', async () => {
  const dir = await tempDir();
  const data = await smallDataset(dir);
  const r = cli(['train', '--model', MODEL, '--data', data, '--data-split', 'test', '--output', join(dir, 'run')]);
  assert.equal(r.code, 1);
  assert.equal(oneSentence(r), `loraforge: --data-split names a split of a folder or Hub dataset, but ${data} is a single file; drop --data-split or pass the folder.`);
});

test('--validation-data-split without --validation-data is refused, not ignored', () => {
  const r = cli(['train', '--model', MODEL, '--data', 'd.jsonl', '--validation-data-split', 'test']);
  assert.equal(r.code, 2);
  assert.equal(oneSentence(r), 'loraforge: --validation-data-split names a split of --validation-data, which is not given; add --validation-data (a folder or Hub dataset) or drop --validation-data-split.');
});
