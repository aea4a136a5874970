import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DataError, prepareDataset } from '../../src/data/index.js';
import { HubError } from '../../src/io/errors.js';
import { startFakeHub } from '../io/fake-hub.js';
import { withOffline } from '../io/hub-env.js';
import { tempDir } from '../io/tmp.js';
import { fixtureTokenizer } from './helpers.js';
import { writeShareGptParquet, writeStringParquet } from './parquet-fixture.js';

const COMMIT = '5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7';
const NOWHERE = 'http://127.0.0.1:9';

/** A dataset repo as `datasets` pushes one: README.md and data/<split>-NNNNN-of-NNNNN.parquet shards. */
async function qaRepo(): Promise<string> {
  const folder = await tempDir();
  await writeFile(join(folder, 'README.md'), '# qa\n');
  await writeStringParquet(join(folder, 'data', 'train-00000-of-00002.parquet'), { question: ['Q: 1+1?', 'Q: 2+2?'], answer: [' 2', ' 4'] });
  await writeStringParquet(join(folder, 'data', 'train-00001-of-00002.parquet'), { question: ['Q: 3+3?'], answer: [' 6'] });
  await writeStringParquet(join(folder, 'data', 'validation-00000-of-00001.parquet'), { question: ['Q: 4+4?'], answer: [' 8'] });
  return folder;
}

test('--data org/name downloads the split\'s files into datasets--org--name and maps their columns', async () => {
  const tok = await fixtureTokenizer();
  const hub = await startFakeHub({ 'loraforge/qa': { folder: await qaRepo(), commit: COMMIT, type: 'dataset' } });
  const cacheDir = await tempDir();
  const options = { path: 'loraforge/qa', validationPath: 'loraforge/qa', seqLen: 64, seed: 0, columns: { prompt: 'question', completion: 'answer' }, hub: { cacheDir, endpoint: hub.endpoint } };
  const data = await prepareDataset(options, tok);
  assert.deepEqual(data.train.records.map((r) => (r.kind === 'completion' ? r.prompt : '')), ['Q: 1+1?', 'Q: 2+2?', 'Q: 3+3?']);
  assert.deepEqual(data.eval?.records, [{ kind: 'completion', prompt: 'Q: 4+4?', completion: ' 8' }]);

  const root = join(cacheDir, 'datasets--loraforge--qa');
  assert.equal(await readFile(join(root, 'refs', 'main'), 'utf8'), COMMIT);
  const snapshot = join(root, 'snapshots', COMMIT, 'data');
  assert.deepEqual((await readdir(snapshot)).sort(), ['train-00000-of-00002.parquet', 'train-00001-of-00002.parquet', 'validation-00000-of-00001.parquet']);
  assert.ok((await lstat(join(snapshot, 'train-00000-of-00002.parquet'))).isSymbolicLink());
  // README.md is not data, so it is never downloaded.
  assert.equal(hub.log.some((r) => r.path.endsWith('/README.md')), false);

  const again = await withOffline(() => prepareDataset({ ...options, hub: { cacheDir, endpoint: NOWHERE } }, tok));
  assert.deepEqual(again.train.records, data.train.records);
});

test('a Hub dataset pinned to a commit hash is read at that commit, leaving refs/ alone', async () => {
  const tok = await fixtureTokenizer();
  const hub = await startFakeHub({ 'loraforge/qa': { folder: await qaRepo(), commit: COMMIT, type: 'dataset' } });
  const cacheDir = await tempDir();
  const data = await prepareDataset({ path: 'loraforge/qa', seqLen: 64, seed: 0, columns: { prompt: 'question', completion: 'answer' }, hub: { cacheDir, endpoint: hub.endpoint, revision: COMMIT } }, tok);
  assert.equal(data.train.records.length, 3);
  assert.equal(hub.log[0]!.path, `/api/datasets/loraforge/qa/revision/${COMMIT}`);
  await assert.rejects(readdir(join(cacheDir, 'datasets--loraforge--qa', 'refs')), { code: 'ENOENT' });
});

test('a row that lacks a mapped column names its hf:// file and row, and lists the columns', async () => {
  const tok = await fixtureTokenizer();
  const hub = await startFakeHub({ 'loraforge/qa': { folder: await qaRepo(), commit: COMMIT, type: 'dataset' } });
  await assert.rejects(
    prepareDataset({ path: 'loraforge/qa', seqLen: 64, seed: 0, columns: { prompt: 'query' }, hub: { cacheDir: await tempDir(), endpoint: hub.endpoint } }, tok),
    (e: Error) => {
      assert.ok(e instanceof DataError);
      assert.equal(e.message, 'hf://datasets/loraforge/qa/data/train-00000-of-00002.parquet row 1: --data-columns maps prompt to the column "query", which is not there; the columns are "question", "answer".');
      return true;
    },
  );
});

test('a Hub dataset without the asked split is refused with the splits it has', async () => {
  const tok = await fixtureTokenizer();
  const hub = await startFakeHub({ 'loraforge/qa': { folder: await qaRepo(), commit: COMMIT, type: 'dataset' } });
  await assert.rejects(
    prepareDataset({ path: 'loraforge/qa', split: 'test', seqLen: 64, seed: 0, hub: { cacheDir: await tempDir(), endpoint: hub.endpoint } }, tok),
    /^DataError: the Hub dataset loraforge\/qa has no test split \(its files name the splits train, validation\); pick one with --data-split, or choose files with --data-files\.$/,
  );
});

test('ShareGPT JSONL on the Hub is found by its *-train-* name and trained as chat', async () => {
  const tok = await fixtureTokenizer();
  const folder = await tempDir();
  const line = (human: string, gpt: string) => JSON.stringify({ conversations: [{ from: 'human', value: human }, { from: 'gpt', value: gpt }] });
  await writeFile(join(folder, 'chat-train-0.jsonl'), `${line('Hi', 'Hello.')}\n${line('Bye', 'Later.')}\n`);
  await writeShareGptParquet(join(folder, 'extra', 'chat-test.parquet'), [{ id: 'x', conversations: [{ from: 'human', value: 'Q' }, { from: 'gpt', value: 'A' }] }]);
  const hub = await startFakeHub({ 'loraforge/chat': { folder, commit: COMMIT, type: 'dataset' } });
  const data = await prepareDataset({ path: 'loraforge/chat', seqLen: 128, seed: 0, hub: { cacheDir: await tempDir(), endpoint: hub.endpoint } }, tok);
  assert.equal(data.format, 'sharegpt');
  assert.deepEqual(data.train.records[1], { kind: 'chat', messages: [{ role: 'user', content: 'Bye' }, { role: 'assistant', content: 'Later.' }] });
  const held = await prepareDataset({ path: 'loraforge/chat', split: 'test', seqLen: 128, seed: 0, hub: { cacheDir: await tempDir(), endpoint: hub.endpoint } }, tok);
  assert.deepEqual(held.train.records, [{ kind: 'chat', messages: [{ role: 'user', content: 'Q' }, { role: 'assistant', content: 'A' }] }]);
});

test('--data-files picks the repo files by glob', async () => {
  const tok = await fixtureTokenizer();
  const hub = await startFakeHub({ 'loraforge/qa': { folder: await qaRepo(), commit: COMMIT, type: 'dataset' } });
  const data = await prepareDataset(
    { path: 'loraforge/qa', dataFiles: 'data/validation-*.parquet', seqLen: 64, seed: 0, columns: { prompt: 'question', completion: 'answer' }, hub: { cacheDir: await tempDir(), endpoint: hub.endpoint } },
    tok,
  );
  assert.deepEqual(data.train.records, [{ kind: 'completion', prompt: 'Q: 4+4?', completion: ' 8' }]);
});

test('an unknown dataset id and a missing local path (even one shaped like org/name.jsonl) get their own sentences', async () => {
  const tok = await fixtureTokenizer();
  const hub = await startFakeHub({ 'loraforge/qa': { folder: await qaRepo(), commit: COMMIT, type: 'dataset' } });
  await assert.rejects(
    prepareDataset({ path: 'loraforge/absent', seqLen: 64, seed: 0, hub: { cacheDir: await tempDir(), endpoint: hub.endpoint } }, tok),
    (e: Error) => e instanceof HubError && e.message === 'The Hub has no dataset repo loraforge/absent (or it is private); check the id, or set HF_TOKEN if it is private.',
  );
  await assert.rejects(
    prepareDataset({ path: './no/such/train.jsonl', seqLen: 64, seed: 0 }, tok),
    /^DataError: \.\/no\/such\/train\.jsonl does not exist; pass a JSONL or parquet file, a folder of them, or a Hub dataset id of the form org\/name\.$/,
  );
  const asked = hub.log.length;
  await assert.rejects(
    prepareDataset({ path: 'data/train.jsonl', seqLen: 64, seed: 0, hub: { cacheDir: await tempDir(), endpoint: hub.endpoint } }, tok),
    /^DataError: data\/train\.jsonl does not exist; pass a JSONL or parquet file, a folder of them, or a Hub dataset id of the form org\/name\.$/,
  );
  // A name with a data file's extension is taken for a mistyped path: the Hub is not asked.
  assert.equal(hub.log.length, asked);
});

test('offline, a dataset the cache lacks is refused naming HF_HUB_OFFLINE', async () => {
  const tok = await fixtureTokenizer();
  const cacheDir = await tempDir();
  await assert.rejects(
    withOffline(() => prepareDataset({ path: 'loraforge/qa', seqLen: 64, seed: 0, hub: { cacheDir, endpoint: NOWHERE } }, tok)),
    (e: Error) => e instanceof HubError && e.message === `dataset loraforge/qa (revision main) is not fully in the cache at ${join(cacheDir, 'datasets--loraforge--qa')} and HF_HUB_OFFLINE is set; run once with network access, or unset HF_HUB_OFFLINE.`,
  );
});
