import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseServeArgs, SERVE_HELP } from '../../src/cli/serve.js';
import { createServer } from '../../src/serve/index.js';
import { peftAdapterBackend } from '../../src/serve/peft-adapter-backend.js';
import { adapterDir, BASE_MODEL, decodeOutput, fixtureGeneration, fixturePrompt, MODEL_DIR, rawRequest, startServer, type TestServer } from './harness.js';

interface ErrorJson {
  error: { message: string; param: string | null; code: string | null };
}

/** An adapter root holding two copies of the fixture LoRA, a folder that is no adapter and a link out of the root. */
async function adapterRoot(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'loraforge-on-demand-'));
  for (const name of ['tenant-a', 'tenant-b', 'tenant-c']) await cp(adapterDir('lora'), join(root, name), { recursive: true });
  await mkdir(join(root, 'empty'));
  await symlink(adapterDir('lora'), join(root, 'escape'));
  return root;
}

async function complete(t: TestServer, model: string): Promise<{ status: number; json: unknown }> {
  return rawRequest(t.baseURL, 'POST', '/completions', JSON.stringify({ model, prompt: await fixturePrompt(), max_tokens: 16, temperature: 0 }));
}

describe('--load-adapters-on-demand: a request naming a folder under --adapter-root loads it', () => {
  let t: TestServer;
  let root: string;
  let expected: string;
  /** Adapter names in the order the backend loaded them. */
  const loads: string[] = [];
  before(async () => {
    root = await adapterRoot();
    expected = await decodeOutput(await fixtureGeneration('lora'));
    t = await startServer({
      adapterRoot: root,
      loadAdaptersOnDemand: true,
      maxAdapters: 1,
      adapterBackend: (model, options) => {
        const backend = peftAdapterBackend(model, options);
        return { load: (name, dir) => (loads.push(name), backend.load(name, dir)), unload: (name) => backend.unload(name) };
      },
    });
  });
  after(async () => {
    await t.server.close();
    await rm(root, { recursive: true, force: true });
  });

  it('answers as that adapter and lists it afterwards', async () => {
    const { status, json } = await complete(t, 'tenant-a');
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal((json as { choices: { text: string }[] }).choices[0]!.text, expected);
    assert.deepEqual((await t.client().models.list()).data.map((m) => m.id), [BASE_MODEL, 'tenant-a']);
  });

  it('loads it once for concurrent requests naming it', async () => {
    const answers = await Promise.all(Array.from({ length: 6 }, () => complete(t, 'tenant-b')));
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200, 200, 200]);
    assert.ok(answers.every((a) => (a.json as { choices: { text: string }[] }).choices[0]!.text === expected));
    assert.equal(loads.filter((n) => n === 'tenant-b').length, 1);
  });

  it('stays within --max-adapters: the idle least recently used adapter is evicted and reloaded when named again', async () => {
    assert.equal((await complete(t, 'tenant-c')).status, 200);
    const metrics = await (await fetch(`${t.baseURL.replace(/\/v1$/, '')}/metrics`)).text();
    assert.match(metrics, /^loraforge_loaded_adapters 1$/m);
    const before = loads.length;
    assert.equal((await complete(t, 'tenant-a')).status, 200);
    assert.deepEqual(loads.slice(before), ['tenant-a']);
  });

  it('answers 404 model_not_found for a name with no folder, or one that is a path', async () => {
    for (const model of ['no-such-tenant', '../tenant-a', 'tenant-a/../tenant-b', '.hidden']) {
      const { status, json } = await complete(t, model);
      assert.equal(status, 404, model);
      assert.equal((json as ErrorJson).error.code, 'model_not_found');
    }
  });

  it('answers 400 naming only the adapter when the folder does not load or links out of the root', async () => {
    for (const model of ['empty', 'escape']) {
      const { status, json } = await complete(t, model);
      assert.equal(status, 400, model);
      assert.deepEqual((json as ErrorJson).error, { message: `The adapter "${model}" could not be loaded; the server's log has the reason.`, type: 'invalid_request_error', param: null, code: 'adapter_load_failed' });
    }
    assert.deepEqual((await t.client().models.list()).data.map((m) => m.id).sort(), [BASE_MODEL, 'tenant-a', 'tenant-b', 'tenant-c'].sort());
  });
});

describe('loading on demand is off by default', () => {
  let t: TestServer;
  let root: string;
  before(async () => {
    root = await adapterRoot();
    t = await startServer({ adapterRoot: root });
  });
  after(async () => {
    await t.server.close();
    await rm(root, { recursive: true, force: true });
  });

  it('answers 404 model_not_found for a folder under --adapter-root that was never loaded', async () => {
    const { status, json } = await complete(t, 'tenant-a');
    assert.equal(status, 404);
    assert.equal((json as ErrorJson).error.message, `The model "tenant-a" does not exist; available: ${BASE_MODEL}.`);
  });

  it('refuses the option without --adapter-root', async () => {
    await assert.rejects(createServer({ modelDir: MODEL_DIR, port: 0, loadAdaptersOnDemand: true }), {
      message: '--load-adapters-on-demand needs --adapter-root DIR: the folder whose adapter folders requests may name.',
    });
  });

  it('is the serve flag --load-adapters-on-demand, false unless given', () => {
    assert.equal(parseServeArgs(['--model', 'm'], {})!.loadAdaptersOnDemand, false);
    assert.equal(parseServeArgs(['--model', 'm', '--adapter-root', 'r', '--load-adapters-on-demand'], {})!.loadAdaptersOnDemand, true);
    assert.match(SERVE_HELP, /--load-adapters-on-demand/);
  });
});
