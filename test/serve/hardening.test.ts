import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fixturePath } from '../helpers/fixtures.js';
import { adapterDir, BASE_MODEL, fixturePrompt, startServer, type TestServer } from './harness.js';

/** Bytes planted outside the adapter root and in a broken adapter: no response may ever carry them. */
const SECRET = 'SECRET-7f3a9c';

interface Answer {
  readonly status: number;
  readonly text: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** One HTTP/1.1 request with exactly these headers (fetch would not let a test set Host). */
function call(port: number, method: string, path: string, body: string | undefined, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers }));
    });
    req.once('error', reject);
    req.end(body);
  });
}

describe('hardening: adapter files, request nesting, Host header', () => {
  let t: TestServer;
  let root: string;
  let outside: string;
  let prompt: number[];
  /** Every response body the suite received, checked at the end for server paths and planted bytes. */
  const seen: string[] = [];

  const send = async (method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<Answer> => {
    const answer = await call(t.server.port, method, path, body, { host: `127.0.0.1:${t.server.port}`, ...headers });
    seen.push(answer.text);
    return answer;
  };
  const addAdapter = (name: string, path: string) => send('POST', '/v1/adapters', JSON.stringify({ name, path }));
  const completion = (model = BASE_MODEL) => JSON.stringify({ model, prompt, max_tokens: 4, temperature: 0 });
  const errorOf = (answer: Answer) => (JSON.parse(answer.text) as { error: { message: string; type: string; param: string | null; code: string | null } }).error;

  async function stillServes(model = BASE_MODEL): Promise<void> {
    const answer = await send('POST', '/v1/completions', completion(model));
    assert.equal(answer.status, 200, answer.text);
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'loraforge-hardening-root-'));
    outside = await mkdtemp(join(tmpdir(), 'loraforge-hardening-outside-'));
    await writeFile(join(outside, 'secret.txt'), `${SECRET} private bytes`);
    const lora = adapterDir('lora');
    // A real adapter copied in, a folder of links to its files (inside the root), and a link to that folder.
    await mkdir(join(root, 'copy'));
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) await copyFile(join(lora, f), join(root, 'copy', f));
    await mkdir(join(root, 'linked-inside'));
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) await symlink(join(root, 'copy', f), join(root, 'linked-inside', f));
    await symlink(join(root, 'copy'), join(root, 'folder-link'));
    // adapter_config.json linked to a file outside the root.
    await mkdir(join(root, 'config-out'));
    await symlink(join(outside, 'secret.txt'), join(root, 'config-out', 'adapter_config.json'));
    await copyFile(join(lora, 'adapter_model.safetensors'), join(root, 'config-out', 'adapter_model.safetensors'));
    // adapter_model.safetensors linked to a file outside the root.
    await mkdir(join(root, 'weights-out'));
    await copyFile(join(lora, 'adapter_config.json'), join(root, 'weights-out', 'adapter_config.json'));
    await symlink(join(outside, 'secret.txt'), join(root, 'weights-out', 'adapter_model.safetensors'));
    // Broken files inside the root whose content the loader's errors would quote.
    await mkdir(join(root, 'bad-config'));
    await writeFile(join(root, 'bad-config', 'adapter_config.json'), `{"${SECRET}": `);
    await mkdir(join(root, 'bad-weights'));
    await copyFile(join(lora, 'adapter_config.json'), join(root, 'bad-weights', 'adapter_config.json'));
    await writeFile(join(root, 'bad-weights', 'adapter_model.safetensors'), `${SECRET} not a safetensors file`);
    t = await startServer({ adapterRoot: root, allowedHosts: ['models.internal'] });
    prompt = await fixturePrompt();
  });
  after(async () => {
    await t.server.close();
    await rm(root, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  it('loads adapters whose folder or files are links to places inside the root', async () => {
    for (const [name, path] of [['via-file-links', 'linked-inside'], ['via-folder-link', 'folder-link']] as const) {
      const answer = await addAdapter(name, path);
      assert.equal(answer.status, 201, answer.text);
      await stillServes(name);
    }
  });

  it('refuses adapter_config.json linked to a file outside the root with 403 naming the link, not the target', async () => {
    const answer = await addAdapter('config-out', 'config-out');
    assert.equal(answer.status, 403);
    assert.deepEqual(errorOf(answer), {
      message: '"config-out/adapter_config.json" links to a file outside the server\'s --adapter-root; copy the file into the adapter folder instead.',
      type: 'permission_error',
      param: 'path',
      code: 'path_outside_adapter_root',
    });
    await stillServes();
  });

  it('refuses adapter_model.safetensors linked to a file outside the root with 403', async () => {
    const answer = await addAdapter('weights-out', 'weights-out');
    assert.equal(answer.status, 403);
    assert.equal(errorOf(answer).message, '"weights-out/adapter_model.safetensors" links to a file outside the server\'s --adapter-root; copy the file into the adapter folder instead.');
    await stillServes();
  });

  it('answers a failed load with the adapter name only, for a broken config and broken weights', async () => {
    for (const name of ['bad-config', 'bad-weights']) {
      const answer = await addAdapter(name, name);
      assert.equal(answer.status, 400);
      assert.deepEqual(errorOf(answer), {
        message: `The adapter "${name}" could not be loaded; the server's log has the reason.`,
        type: 'invalid_request_error',
        param: null,
        code: 'adapter_load_failed',
      });
    }
    const models = JSON.parse((await send('GET', '/v1/models')).text) as { data: { id: string }[] };
    assert.deepEqual(models.data.map((m) => m.id), [BASE_MODEL, 'via-file-links', 'via-folder-link']);
    await stillServes();
  });

  it('refuses a prompt of 100,000 nested arrays with 400 json_too_deep', async () => {
    const body = `{"model": "${BASE_MODEL}", "prompt": ${'['.repeat(100_000)}1${']'.repeat(100_000)}}`;
    const answer = await send('POST', '/v1/completions', body);
    assert.equal(answer.status, 400);
    assert.deepEqual(errorOf(answer), {
      message: 'The request body nests arrays and objects more than 32 levels deep; send a flatter body.',
      type: 'invalid_request_error',
      param: null,
      code: 'json_too_deep',
    });
    await stillServes();
  });

  it('refuses deeply nested chat messages with the same 400, and counts no brackets inside strings', async () => {
    const deep = await send('POST', '/v1/chat/completions', `{"model": "${BASE_MODEL}", "messages": [{"role": "user", "content": "hi", "x": ${'{"a": '.repeat(50)}1${'}'.repeat(50)}}]}`);
    assert.equal(deep.status, 400);
    assert.equal(errorOf(deep).code, 'json_too_deep');
    const brackets = await send('POST', '/v1/completions', JSON.stringify({ model: BASE_MODEL, prompt: `${'[{'.repeat(40)}\\"]`, max_tokens: 2 }));
    assert.equal(brackets.status, 200, brackets.text);
    await stillServes();
  });

  it('refuses a prompt nested three levels deep with 400 naming "prompt"', async () => {
    const answer = await send('POST', '/v1/completions', JSON.stringify({ model: BASE_MODEL, prompt: [[[1, 2]]] }));
    assert.equal(answer.status, 400);
    assert.deepEqual(errorOf(answer), {
      message: '"prompt" must be a string, an array of token ids, or an array holding one of those.',
      type: 'invalid_request_error',
      param: 'prompt',
      code: null,
    });
    await stillServes();
  });

  it('answers Host headers naming loopback or an --allowed-hosts name, with no port or the server\'s port', async () => {
    const port = t.server.port;
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'localhost', `LOCALHOST:${port}`, `models.internal:${port}`]) {
      const answer = await send('GET', '/health', undefined, { host });
      assert.equal(answer.status, 200, `${host}: ${answer.text}`);
    }
  });

  it('refuses other Host headers with 403 host_not_allowed, on every route', async () => {
    const port = t.server.port;
    for (const [host, path] of [[`attacker.example:${port}`, '/v1/models'], [`localhost:${port + 1}`, '/health'], [`127.0.0.2:${port}`, '/metrics'], [`models.internal.evil:${port}`, '/v1/completions']] as const) {
      const answer = await send(path === '/v1/completions' ? 'POST' : 'GET', path, path === '/v1/completions' ? completion() : undefined, { host });
      assert.equal(answer.status, 403, host);
      assert.deepEqual(errorOf(answer), {
        message: `The Host header "${host}" does not name this server, which answers localhost, 127.0.0.1, [::1] and the names given to --allowed-hosts.`,
        type: 'permission_error',
        param: null,
        code: 'host_not_allowed',
      });
    }
    await stillServes();
  });

  it('never put a server path or a planted byte in any response', () => {
    assert.ok(seen.length >= 20, `${seen.length} responses`);
    for (const text of seen) {
      for (const leak of [root, outside, fixturePath(), tmpdir(), SECRET]) assert.ok(!text.includes(leak), `a response holds ${leak}: ${text.slice(0, 300)}`);
    }
  });
});
