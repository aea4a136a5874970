import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, readlink, lstat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { openCheckpoint } from '../../src/io/checkpoint.js';
import { FormatError, HubError } from '../../src/io/errors.js';
import { hubCacheDir } from '../../src/io/hub-cache.js';
import { resolvePretrained } from '../../src/io/hub.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { writeShardedCheckpoint } from '../../src/io/sharded-writer.js';
import type { SafetensorsEntry } from '../../src/io/safetensors-writer.js';
import { fixturePath } from '../helpers/fixtures.js';
import { startFakeHub } from './fake-hub.js';
import { withOffline } from './hub-env.js';
import { tempDir } from './tmp.js';

const COMMIT = '3f1b2c4d5e6f708192a3b4c5d6e7f8091a2b3c4d';
const NOWHERE = 'http://127.0.0.1:9';

test('an existing local folder is returned as is, without any network', async () => {
  const folder = fixturePath('tiny-llama');
  assert.equal(await resolvePretrained(folder, { endpoint: NOWHERE }), folder);
});

test('a missing path that is not an org/name id is an error naming it', async () => {
  for (const bad of ['./models/missing', '/no/such/folder', 'just-a-name', 'a/b/c', 'org/na..me']) {
    await assert.rejects(resolvePretrained(bad, { endpoint: NOWHERE }), (err: unknown) => {
      assert.ok(err instanceof FormatError);
      assert.equal(err.message, `${bad} is neither an existing folder nor a Hugging Face repo id of the form org/name; check the path.`);
      return true;
    });
  }
});

test('a path to a file is refused', async () => {
  await assert.rejects(resolvePretrained(fixturePath('tiny-llama', 'config.json')), /is a file; pass the folder that holds config\.json/);
});

test('the cache folder follows HF_HUB_CACHE, then HF_HOME, then XDG_CACHE_HOME, then ~/.cache', () => {
  assert.equal(hubCacheDir({ HF_HUB_CACHE: '/c/hub', HF_HOME: '/h' }), '/c/hub');
  assert.equal(hubCacheDir({ HF_HOME: '/h' }), '/h/hub');
  assert.equal(hubCacheDir({ XDG_CACHE_HOME: '/x' }), '/x/huggingface/hub');
  assert.equal(hubCacheDir({}), join(homedir(), '.cache', 'huggingface', 'hub'));
});

test('a repo id downloads into the Hugging Face cache layout, then a second call uses the cache without network', async () => {
  const hub = await startFakeHub({ 'loraforge/tiny-llama': { folder: fixturePath('tiny-llama'), commit: COMMIT } });
  const cacheDir = await tempDir();
  const dir = await resolvePretrained('loraforge/tiny-llama', { cacheDir, endpoint: hub.endpoint });

  const repoRoot = join(cacheDir, 'models--loraforge--tiny-llama');
  assert.equal(dir, join(repoRoot, 'snapshots', COMMIT));
  assert.deepEqual((await readdir(dir)).sort(), [
    'chat_template.jinja',
    'config.json',
    'generation_config.json',
    'model.safetensors',
    'tokenizer.json',
    'tokenizer_config.json',
  ]);
  for (const file of await readdir(dir)) {
    assert.deepEqual(await readFile(join(dir, file)), await readFile(fixturePath('tiny-llama', file)), file);
  }
  const weights = await readFile(fixturePath('tiny-llama', 'model.safetensors'));
  const sha256 = createHash('sha256').update(weights).digest('hex');
  assert.ok((await lstat(join(dir, 'model.safetensors'))).isSymbolicLink());
  assert.equal(await readlink(join(dir, 'model.safetensors')), join('..', '..', 'blobs', sha256));
  assert.equal(await readFile(join(repoRoot, 'refs', 'main'), 'utf8'), COMMIT);
  // The first request resolves "main" to its commit; every later one is pinned to that commit.
  assert.equal(hub.log[0]!.path, '/api/models/loraforge/tiny-llama/revision/main');
  const later = hub.log.slice(1).filter((r) => !r.path.startsWith('/cdn/'));
  assert.ok(later.length > 0);
  assert.ok(later.every((r) => r.path.startsWith(`/loraforge/tiny-llama/resolve/${COMMIT}/`) || r.path === `/api/models/loraforge/tiny-llama/paths-info/${COMMIT}`), JSON.stringify(later));
  assert.ok(hub.log.some((r) => r.path === `/cdn/${sha256}`));

  const again = await resolvePretrained('loraforge/tiny-llama', { cacheDir, endpoint: NOWHERE });
  assert.equal(again, dir);
});

test('a commit hash revision downloads into snapshots/<commit>, writes no ref, and is served from the cache offline', async () => {
  const hub = await startFakeHub({ 'loraforge/tiny-llama': { folder: fixturePath('tiny-llama'), commit: COMMIT } });
  const cacheDir = await tempDir();
  const dir = await resolvePretrained('loraforge/tiny-llama', { cacheDir, endpoint: hub.endpoint, revision: COMMIT });
  const repoRoot = join(cacheDir, 'models--loraforge--tiny-llama');
  assert.equal(dir, join(repoRoot, 'snapshots', COMMIT));
  assert.equal(hub.log[0]!.path, `/api/models/loraforge/tiny-llama/revision/${COMMIT}`);
  await assert.rejects(readdir(join(repoRoot, 'refs')), { code: 'ENOENT' });
  assert.equal(await withOffline(() => resolvePretrained('loraforge/tiny-llama', { cacheDir, endpoint: NOWHERE, revision: COMMIT })), dir);
});

test('optional files the repo lacks are skipped, remembered, and not asked for again', async () => {
  const hub = await startFakeHub({ 'loraforge/tiny-llama-bnb-4bit': { folder: fixturePath('tiny-llama-bnb-4bit'), commit: COMMIT } });
  const cacheDir = await tempDir();
  const dir = await resolvePretrained('loraforge/tiny-llama-bnb-4bit', { cacheDir, endpoint: hub.endpoint });
  assert.equal((await readdir(dir)).includes('generation_config.json'), false);
  const marker = join(cacheDir, 'models--loraforge--tiny-llama-bnb-4bit', '.no_exist', COMMIT, 'generation_config.json');
  assert.equal((await lstat(marker)).size, 0);
  assert.equal(await resolvePretrained('loraforge/tiny-llama-bnb-4bit', { cacheDir, endpoint: NOWHERE }), dir);
});

test('a sharded repo is fetched through its index: model.safetensors 404, then the index and every shard', async () => {
  const source = await SafetensorsFile.open(fixturePath('tiny-llama', 'model.safetensors'));
  const folder = await tempDir();
  const entries: SafetensorsEntry[] = source.names().map((name) => ({ ...source.info(name), data: () => source.read(name) }));
  await writeShardedCheckpoint(folder, entries, { maxShardBytes: 200_000 });
  const hub = await startFakeHub({ 'loraforge/sharded': { folder, commit: COMMIT } });
  const cacheDir = await tempDir();
  const dir = await resolvePretrained('loraforge/sharded', { cacheDir, endpoint: hub.endpoint, files: ['model.safetensors'] });
  assert.deepEqual((await readdir(dir)).sort(), [
    'model-00001-of-00003.safetensors',
    'model-00002-of-00003.safetensors',
    'model-00003-of-00003.safetensors',
    'model.safetensors.index.json',
  ]);
  const checkpoint = await openCheckpoint(dir);
  try {
    assert.deepEqual(await checkpoint.read('model.norm.weight'), await source.read('model.norm.weight'));
  } finally {
    await checkpoint.close();
    await source.close();
  }
  assert.equal(await resolvePretrained('loraforge/sharded', { cacheDir, endpoint: NOWHERE, files: ['model.safetensors'] }), dir);
});

test('a private repo without a token fails with a message that says to set HF_TOKEN', async () => {
  const hub = await startFakeHub({ 'loraforge/private': { folder: fixturePath('tiny-llama-lora_qv'), commit: COMMIT, token: 'hf_secret' } });
  const saved = process.env.HF_TOKEN;
  delete process.env.HF_TOKEN;
  try {
    const files = ['adapter_config.json', 'adapter_model.safetensors'];
    await assert.rejects(resolvePretrained('loraforge/private', { cacheDir: await tempDir(), endpoint: hub.endpoint, files }), (err: unknown) => {
      assert.ok(err instanceof HubError);
      assert.equal(err.status, 401);
      assert.match(err.message, /^The Hub refused the revision info of loraforge\/private \(revision main\) without a token \(401\): the repo is private, gated or does not exist; set HF_TOKEN to an access token that can read it, and check the id\.$/);
      return true;
    });
    await assert.rejects(resolvePretrained('loraforge/private', { cacheDir: await tempDir(), endpoint: hub.endpoint, files, token: 'hf_wrong' }), /refused the token .*set HF_TOKEN to a valid access token/);

    process.env.HF_TOKEN = 'hf_secret';
    const dir = await resolvePretrained('loraforge/private', { cacheDir: await tempDir(), endpoint: hub.endpoint, files });
    assert.deepEqual((await readdir(dir)).sort(), files);
    assert.ok(hub.log.filter((r) => r.path.includes('/resolve/')).at(-1)!.authorization === 'Bearer hf_secret');
  } finally {
    if (saved === undefined) delete process.env.HF_TOKEN;
    else process.env.HF_TOKEN = saved;
  }
});

test('a required file the repo lacks is named in the error', async () => {
  const hub = await startFakeHub({ 'loraforge/adapter': { folder: fixturePath('tiny-llama-lora_qv'), commit: COMMIT } });
  await assert.rejects(
    resolvePretrained('loraforge/adapter', { cacheDir: await tempDir(), endpoint: hub.endpoint }),
    /loraforge\/adapter \(revision main\) has no config\.json; check the repo id, the revision and the file name\./,
  );
  await assert.rejects(
    resolvePretrained('loraforge/adapter', { cacheDir: await tempDir(), endpoint: hub.endpoint, files: ['adapter_config.json', 'model.safetensors'] }),
    /has no model\.safetensors nor model\.safetensors\.index\.json \(loraforge loads safetensors weights only\)/,
  );
});

test('an unknown repo or revision gets its own message', async () => {
  const hub = await startFakeHub({ 'loraforge/tiny-llama': { folder: fixturePath('tiny-llama'), commit: COMMIT } });
  await assert.rejects(resolvePretrained('loraforge/absent', { cacheDir: await tempDir(), endpoint: hub.endpoint }), /The Hub has no repo loraforge\/absent/);
  await assert.rejects(
    resolvePretrained('loraforge/tiny-llama', { cacheDir: await tempDir(), endpoint: hub.endpoint, revision: 'v9' }),
    /loraforge\/tiny-llama has no revision v9; check the branch, tag or commit name\./,
  );
});

test('a download whose bytes do not match their sha256 is rejected and leaves nothing in the cache', async () => {
  const weights = new Uint8Array(await readFile(fixturePath('tiny-llama-lora_qv', 'adapter_model.safetensors')));
  const corrupted = weights.slice();
  corrupted[5000] ^= 0xff;
  const hub = await startFakeHub({
    'loraforge/flaky': { folder: fixturePath('tiny-llama-lora_qv'), commit: COMMIT, corrupt: { 'adapter_model.safetensors': corrupted } },
  });
  const cacheDir = await tempDir();
  await assert.rejects(
    resolvePretrained('loraforge/flaky', { cacheDir, endpoint: hub.endpoint, files: ['adapter_model.safetensors'] }),
    /does not match its sha256 [0-9a-f]{64}; run again to retry\./,
  );
  assert.deepEqual(await readdir(join(cacheDir, 'models--loraforge--flaky', 'blobs')), []);
});

test('a connection dropped mid-file is reported as an interrupted download and leaves no partial blob', async () => {
  const hub = await startFakeHub({ 'loraforge/cut': { folder: fixturePath('tiny-llama'), commit: COMMIT, cutAfter: { 'tokenizer.json': 1000 } } });
  const cacheDir = await tempDir();
  await assert.rejects(
    resolvePretrained('loraforge/cut', { cacheDir, endpoint: hub.endpoint, files: ['tokenizer.json'] }),
    (err: unknown) => err instanceof HubError && /^Download of tokenizer\.json of loraforge\/cut \(revision main\) was interrupted after 1000 bytes \(.+\); run again to retry\.$/.test(err.message),
  );
  assert.deepEqual(await readdir(join(cacheDir, 'models--loraforge--cut', 'blobs')), []);
});

test('an unreachable Hub gives a message about the network and HF_HUB_OFFLINE', async () => {
  await assert.rejects(
    resolvePretrained('loraforge/tiny-llama', { cacheDir: await tempDir(), endpoint: NOWHERE }),
    /Could not reach http:\/\/127\.0\.0\.1:9 for the revision info of loraforge\/tiny-llama \(revision main\) \(.+\); check the network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only the cache\.$/,
  );
});

test('HF_HUB_OFFLINE=1 refuses to download what the cache lacks', async () => {
  const cacheDir = await tempDir();
  await assert.rejects(withOffline(() => resolvePretrained('loraforge/tiny-llama', { cacheDir, endpoint: NOWHERE })), /is not fully in the cache at .* and HF_HUB_OFFLINE is set/);
});

test('a token that is not a Hugging Face access token is refused before any request, naming HF_TOKEN', async () => {
  const hub = await startFakeHub({ 'loraforge/tiny-llama': { folder: fixturePath('tiny-llama'), commit: COMMIT } });
  await assert.rejects(
    resolvePretrained('loraforge/tiny-llama', { cacheDir: await tempDir(), endpoint: hub.endpoint, token: 'secret' }),
    (err: unknown) => {
      assert.ok(err instanceof HubError);
      assert.equal(err.message, 'The Hub token (HF_TOKEN or the token option) does not start with hf_; set it to a Hugging Face access token from https://huggingface.co/settings/tokens.');
      return true;
    },
  );
  assert.deepEqual(hub.log, []);
});

test('a gated repo (403) says to accept its terms and set HF_TOKEN', async () => {
  const hub = await startFakeHub({ 'loraforge/gated': { folder: fixturePath('tiny-llama'), commit: COMMIT, gated: true } });
  await assert.rejects(resolvePretrained('loraforge/gated', { cacheDir: await tempDir(), endpoint: hub.endpoint, token: 'hf_reader' }), (err: unknown) => {
    assert.ok(err instanceof HubError);
    assert.equal(err.status, 403);
    assert.equal(err.message, 'The Hub denied access to config.json of loraforge/gated (revision main) (403): the repo is gated; accept its terms on the model page, then set HF_TOKEN to a token of that account.');
    return true;
  });
});

test('a small (non-LFS) file whose bytes do not match its git blob sha1 is rejected and leaves nothing in the cache', async () => {
  const config = new Uint8Array(await readFile(fixturePath('tiny-llama', 'config.json')));
  const corrupted = config.slice();
  corrupted[10] ^= 0x01;
  const hub = await startFakeHub({ 'loraforge/flaky': { folder: fixturePath('tiny-llama'), commit: COMMIT, corrupt: { 'config.json': corrupted } } });
  const cacheDir = await tempDir();
  await assert.rejects(
    resolvePretrained('loraforge/flaky', { cacheDir, endpoint: hub.endpoint, files: ['config.json'] }),
    /^HubError: Download of config\.json of loraforge\/flaky \(revision main\) does not match its git blob sha1 [0-9a-f]{40}; run again to retry\.$/,
  );
  assert.deepEqual(await readdir(join(cacheDir, 'models--loraforge--flaky', 'blobs')), []);
});
