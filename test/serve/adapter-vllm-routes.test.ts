import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { adapterDir, BASE_MODEL, decodeOutput, fixtureGeneration, fixturePrompt, rawRequest, startServer, type TestServer } from './harness.js';

const KEY = 'vllm-routes-key';
const auth = { authorization: `Bearer ${KEY}` };

interface ErrorJson {
  error: { message: string; param: string | null; code: string | null };
}

const load = (t: TestServer, body: object, headers: Record<string, string> = auth) => rawRequest(t.baseURL, 'POST', '/load_lora_adapter', JSON.stringify(body), headers);
const unload = (t: TestServer, body: object, headers: Record<string, string> = auth) => rawRequest(t.baseURL, 'POST', '/unload_lora_adapter', JSON.stringify(body), headers);

function refusal(answer: { status: number; json: unknown }): [number, ErrorJson['error']] {
  return [answer.status, (answer.json as ErrorJson).error];
}

describe("vLLM's /v1/load_lora_adapter and /v1/unload_lora_adapter", () => {
  let t: TestServer;
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'loraforge-vllm-routes-'));
    await cp(adapterDir('lora'), join(root, 'sql-lora'), { recursive: true });
    await mkdir(join(root, 'empty'));
    await symlink(adapterDir('lora'), join(root, 'escape'));
    t = await startServer({ apiKey: KEY, adapterRoot: root });
  });
  after(async () => {
    await t.server.close();
    await rm(root, { recursive: true, force: true });
  });

  it('loads an adapter from under --adapter-root with 200 and vLLM\'s text, and serves it', async () => {
    const answer = await load(t, { lora_name: 'sql', lora_path: 'sql-lora' });
    assert.deepEqual(answer, { status: 200, json: "Success: LoRA adapter 'sql' added successfully." });
    const prompt = await fixturePrompt();
    const r = await t.client(KEY).completions.create({ model: 'sql', prompt, max_tokens: 16, temperature: 0 });
    assert.equal(r.choices[0]!.text, await decodeOutput(await fixtureGeneration('lora')));
    assert.deepEqual((await t.client(KEY).models.list()).data.map((m) => m.id), [BASE_MODEL, 'sql']);
  });

  it('unloads it with 200 and vLLM\'s text; the model is then unknown', async () => {
    assert.equal((await load(t, { lora_name: 'gone', lora_path: 'sql-lora' })).status, 200);
    assert.deepEqual(await unload(t, { lora_name: 'gone' }), { status: 200, json: "Success: LoRA adapter 'gone' removed successfully." });
    const prompt = await fixturePrompt();
    await assert.rejects(t.client(KEY).completions.create({ model: 'gone', prompt, max_tokens: 2 }), (e: { status?: number; code?: string }) => e.status === 404 && e.code === 'model_not_found');
  });

  it('answers 400 for a name already served, as vLLM does', async () => {
    assert.equal((await load(t, { lora_name: 'twice', lora_path: 'sql-lora' })).status, 200);
    const [status, error] = refusal(await load(t, { lora_name: 'twice', lora_path: 'sql-lora' }));
    assert.equal(status, 400);
    assert.deepEqual(error, { message: 'The adapter "twice" is already loaded; unload it first or pick another lora_name.', type: 'invalid_request_error', param: 'lora_name', code: 'adapter_exists' });
  });

  it('answers 404 naming lora_name for an adapter that is not served', async () => {
    const [status, error] = refusal(await unload(t, { lora_name: 'never-loaded' }));
    assert.equal(status, 404);
    assert.equal(error.message, 'No adapter named "never-loaded" is served; GET /v1/models lists them.');
    assert.equal(error.param, 'lora_name');
  });

  it('refuses unknown and unsupported fields with 400 naming them', async () => {
    const cases: [typeof load, object, string, string][] = [
      [load, { lora_name: 'x', lora_path: 'sql-lora', foo_bar: 1 }, 'foo_bar', '"foo_bar" is not a field of POST /v1/load_lora_adapter requests on this server; remove it.'],
      [load, { lora_name: 'x', lora_path: 'sql-lora', load_inplace: true }, 'load_inplace', '"load_inplace" is not supported: unload the adapter (POST /v1/unload_lora_adapter), then load it again.'],
      [unload, { lora_name: 'sql', lora_int_id: 3 }, 'lora_int_id', '"lora_int_id" is not used by this server, which names adapters by lora_name only; remove it.'],
      [unload, { lora_name: 'sql', name: 'sql' }, 'name', '"name" is not a field of POST /v1/unload_lora_adapter requests on this server; remove it.'],
      [load, { lora_name: 'x' }, 'lora_path', '"lora_path" is required and must be a non-empty string.'],
      [load, { lora_path: 'sql-lora' }, 'lora_name', '"lora_name" is required and must be a non-empty string.'],
    ];
    for (const [route, body, param, message] of cases) {
      const [status, error] = refusal(await route(t, body));
      assert.equal(status, 400, JSON.stringify(body));
      assert.deepEqual([error.param, error.message], [param, message]);
    }
    assert.equal((await load(t, { lora_name: 'inplace-off', lora_path: 'sql-lora', load_inplace: false })).status, 200);
  });

  it('keeps lora_path inside --adapter-root, as POST /v1/adapters does', async () => {
    for (const lora_path of ['../etc', '/etc', adapterDir('lora'), 'escape']) {
      const [status, error] = refusal(await load(t, { lora_name: 'evil', lora_path }));
      assert.deepEqual([status, error.code, error.param], [403, 'path_outside_adapter_root', 'lora_path'], lora_path);
    }
    const [status, error] = refusal(await load(t, { lora_name: 'broken', lora_path: 'empty' }));
    assert.deepEqual([status, error.message], [400, 'The adapter "broken" could not be loaded; the server\'s log has the reason.']);
  });

  it('needs the API key', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong' }] as Record<string, string>[]) {
      assert.equal((await load(t, { lora_name: 'nokey', lora_path: 'sql-lora' }, headers)).status, 401);
      assert.equal((await unload(t, { lora_name: 'sql' }, headers)).status, 401);
    }
  });

  it('refuses unknown fields on POST /v1/adapters too', async () => {
    const answer = await rawRequest(t.baseURL, 'POST', '/adapters', JSON.stringify({ name: 'x', path: 'sql-lora', lora_name: 'x' }), auth);
    assert.deepEqual(refusal(answer), [400, { message: '"lora_name" is not a field of POST /v1/adapters requests on this server; remove it.', type: 'invalid_request_error', param: 'lora_name', code: 'unknown_parameter' }]);
  });
});

describe('/v1/load_lora_adapter without --adapter-root', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(() => t.server.close());

  it('answers 403: run-time loading is off', async () => {
    const [status, error] = refusal(await load(t, { lora_name: 'x', lora_path: 'y' }, {}));
    assert.deepEqual([status, error.code, error.message], [403, 'adapter_loading_disabled', 'Loading adapters at run time is off; start the server with --adapter-root DIR.']);
  });
});
