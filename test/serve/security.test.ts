import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { adapterDir, BASE_MODEL, fixturePrompt, rawRequest, startServer, type TestServer } from './harness.js';

const KEY = 'test-secret-key';

interface ErrorJson {
  error: { message: string; type: string; param: string | null; code: string | null };
}

function errorOf(json: unknown): ErrorJson['error'] {
  const e = (json as ErrorJson).error;
  assert.ok(e && typeof e.message === 'string' && e.message.length > 0, `an OpenAI-style error body, got ${JSON.stringify(json)}`);
  return e;
}

describe('refusals: each with its status and an OpenAI-style body, and the server keeps serving', () => {
  let t: TestServer;
  let root: string;
  let prompt: number[];
  const auth = { authorization: `Bearer ${KEY}` };
  const completion = (extra: object = {}) => JSON.stringify({ model: BASE_MODEL, prompt, max_tokens: 4, temperature: 0, ...extra });

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'loraforge-serve-root-'));
    await mkdir(join(root, 'empty'));
    // A link inside the root that points out of it.
    await symlink(adapterDir('lora'), join(root, 'escape'));
    t = await startServer({ apiKey: KEY, adapterRoot: root, bodyLimit: 16 * 1024 });
    prompt = await fixturePrompt();
  });
  after(async () => {
    await t.server.close();
    await rm(root, { recursive: true, force: true });
  });

  /** After every refusal: a normal request still succeeds. */
  async function stillServes(): Promise<void> {
    const { status, json } = await rawRequest(t.baseURL, 'POST', '/completions', completion(), auth);
    assert.equal(status, 200, JSON.stringify(json));
  }

  it('refuses adapter paths that leave the adapter root (.., absolute, symbolic link) with 403', async () => {
    for (const path of ['../etc', `../${root.split('/').at(-1)}/../tiny`, adapterDir('lora'), '/etc', 'escape', 'empty/../../x']) {
      const { status, json } = await rawRequest(t.baseURL, 'POST', '/adapters', JSON.stringify({ name: 'evil', path }), auth);
      assert.equal(status, 403, `${path}: ${JSON.stringify(json)}`);
      assert.equal(errorOf(json).code, 'path_outside_adapter_root');
    }
    const missing = await rawRequest(t.baseURL, 'POST', '/adapters', JSON.stringify({ name: 'ghost', path: 'no-such-folder' }), auth);
    assert.equal(missing.status, 404);
    const broken = await rawRequest(t.baseURL, 'POST', '/adapters', JSON.stringify({ name: 'broken', path: 'empty' }), auth);
    assert.equal(broken.status, 400);
    assert.equal(errorOf(broken.json).code, 'adapter_load_failed');
    const models = await t.client(KEY).models.list();
    assert.deepEqual(models.data.map((m) => m.id), [BASE_MODEL]);
    await stillServes();
  });

  it('refuses admin and inference calls without the right key with 401', async () => {
    const headerSets: Record<string, string>[] = [{}, { authorization: 'Bearer wrong' }, { authorization: KEY }];
    for (const headers of headerSets) {
      const add = await rawRequest(t.baseURL, 'POST', '/adapters', JSON.stringify({ name: 'a', path: 'empty' }), headers);
      assert.equal(add.status, 401);
      assert.equal(errorOf(add.json).code, 'invalid_api_key');
      assert.equal((await rawRequest(t.baseURL, 'DELETE', '/adapters/a', undefined, headers)).status, 401);
      assert.equal((await rawRequest(t.baseURL, 'POST', '/completions', completion(), headers)).status, 401);
      assert.equal((await rawRequest(t.baseURL, 'GET', '/models', undefined, headers)).status, 401);
    }
    for (const path of ['/%761/models', '/v1/%6dodels', '/v1/models/']) {
      const { status } = await rawRequest(t.baseURL.replace(/\/v1$/, ''), 'GET', path);
      assert.equal(status, 401, `${path} skipped the key check`);
    }
    await assert.rejects(t.client('wrong').models.list(), (e: { status?: number }) => e.status === 401);
    await stillServes();
  });

  it('refuses a body over the limit with 413', async () => {
    const { status, json } = await rawRequest(t.baseURL, 'POST', '/completions', completion({ prompt: 'x'.repeat(64 * 1024) }), auth);
    assert.equal(status, 413);
    assert.equal(errorOf(json).code, 'request_too_large');
    await stillServes();
  });

  it('refuses malformed JSON with 400 and a non-JSON content type with 415', async () => {
    for (const body of ['{"model": "tiny-llama", "prompt": [1, 2', '{"__proto__": {"x": 1}}', '']) {
      const { status, json } = await rawRequest(t.baseURL, 'POST', '/completions', body, auth);
      assert.equal(status, 400, `${body}: ${JSON.stringify(json)}`);
      errorOf(json);
    }
    const wrongType = await rawRequest(t.baseURL, 'POST', '/completions', 'model=x', { ...auth, 'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(wrongType.status, 415);
    const text = await rawRequest(t.baseURL, 'POST', '/completions', 'model=x', { ...auth, 'content-type': 'text/plain' });
    assert.equal(text.status, 400);
    await stillServes();
  });

  it('refuses an unknown model name with 404 model_not_found, for completions and chat', async () => {
    const client = t.client(KEY);
    await assert.rejects(client.completions.create({ model: 'no-such-model', prompt, max_tokens: 2 }), (e: { status?: number; code?: string }) => e.status === 404 && e.code === 'model_not_found');
    await assert.rejects(
      client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }], stream: true }),
      (e: { status?: number }) => e.status === 404,
    );
    await stillServes();
  });

  it('refuses invalid fields with 400 naming the field', async () => {
    const cases: [string, object, string][] = [
      ['/completions', { model: BASE_MODEL, prompt, temperature: 5 }, 'temperature'],
      ['/completions', { model: BASE_MODEL, prompt: [1, 2, 99999] }, 'prompt'],
      ['/completions', { model: BASE_MODEL, prompt: [] }, 'prompt'],
      ['/completions', { prompt }, 'model'],
      ['/completions', { model: BASE_MODEL, prompt, max_tokens: 100000 }, 'max_tokens'],
      ['/completions', { model: BASE_MODEL, prompt, max_tokens: 250 }, 'max_tokens'],
      ['/completions', { model: BASE_MODEL, prompt, n: 0 }, 'n'],
      ['/completions', { model: BASE_MODEL, prompt, stop: [1] }, 'stop'],
      ['/completions', { model: BASE_MODEL, prompt, stream_options: { include_usage: true } }, 'stream_options'],
      ['/chat/completions', { model: BASE_MODEL, messages: 'hi' }, 'messages'],
      ['/chat/completions', { model: BASE_MODEL, messages: [{ content: 'hi' }] }, 'messages[0].role'],
      ['/chat/completions', { model: BASE_MODEL, messages: [{ role: 'user', content: [{ type: 'image_url' }] }] }, 'messages[0].content[0]'],
    ];
    for (const [path, body, param] of cases) {
      const { status, json } = await rawRequest(t.baseURL, 'POST', path, JSON.stringify(body), auth);
      assert.equal(status, 400, `${JSON.stringify(body)}: ${JSON.stringify(json)}`);
      assert.equal(errorOf(json).param, param, JSON.stringify(json));
      assert.equal(errorOf(json).type, 'invalid_request_error');
    }
    const unknownRoute = await rawRequest(t.baseURL, 'GET', '/nothing-here', undefined, auth);
    assert.equal(unknownRoute.status, 404);
    errorOf(unknownRoute.json);
    await stillServes();
  });

  it('answers /health and /metrics without the key', async () => {
    const origin = t.baseURL.replace(/\/v1$/, '');
    assert.equal((await fetch(`${origin}/health`)).status, 200);
    const metrics = await (await fetch(`${origin}/metrics`)).text();
    assert.match(metrics, /loraforge_http_requests_total\{route="\/v1\/completions",status="401"\} \d+/);
  });
});
