import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PeftError } from '../../src/peft/index.js';
import { createServer, ServeOptionError } from '../../src/serve/index.js';
import { cli, MAIN, MODEL } from '../cli/helpers.js';
import { fixturePath } from '../helpers/fixtures.js';

describe('serve: options checked before the server starts', () => {
  it('exits with code 2 and one sentence when --adapter-root does not exist', () => {
    const r = cli(['serve', '--model', MODEL, '--port', '0', '--adapter-root', '/nonexistent/loraforge-root']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'loraforge serve: --adapter-root /nonexistent/loraforge-root does not exist; create the folder or pass an existing one.\n');
    assert.equal(r.stdout, '');
  });

  it('refuses an --adapter-root that is a file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'loraforge-root-file-'));
    const file = join(dir, 'not-a-folder');
    await writeFile(file, 'x');
    try {
      await assert.rejects(createServer({ modelDir: MODEL, port: 0, adapterRoot: file }), new ServeOptionError(`--adapter-root ${file} is not a folder; pass the folder that holds the adapter folders.`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('exits with code 2 and one sentence when the server cannot read --adapter-root', async () => {
    const root = await mkdtemp(join(tmpdir(), 'loraforge-root-unreadable-'));
    await chmod(root, 0o000);
    // Permission bits do not bind root, so a suite run as root starts the server as the unprivileged uid 65534.
    const user = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    try {
      const r = spawnSync(process.execPath, [MAIN, 'serve', '--model', MODEL, '--port', '0', '--adapter-root', root], { encoding: 'utf8', ...user });
      assert.equal(r.status, 2);
      assert.equal(r.stderr, `loraforge serve: --adapter-root ${root} is not readable by the server; grant it read and execute permission.\n`);
      assert.equal(r.stdout, '');
    } finally {
      await chmod(root, 0o700);
      await rm(root, { recursive: true, force: true });
    }
  });

  it('exits with code 2 and one sentence for an --allowed-hosts entry with a port', () => {
    const r = cli(['serve', '--model', MODEL, '--port', '0', '--allowed-hosts', 'ok.example,bad.example:8000']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'loraforge serve: --allowed-hosts entry "bad.example:8000" is not a host name; give names such as api.example.com or 10.0.0.5, without a port.\n');
  });

  it('exits with code 2 and one sentence for a --cors-origin that is not an origin', () => {
    const r = cli(['serve', '--model', MODEL, '--port', '0', '--cors-origin', 'https://ok.example', '--cors-origin', 'https://app.example/']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'loraforge serve: --cors-origin "https://app.example/" is not an origin; give scheme://host[:port] with no path, such as https://app.example or http://localhost:5173, or * for any origin.\n');
    assert.equal(r.stdout, '');
  });

  it('reports a start-up adapter that fails to load with the loader\'s own error, for the operator', async () => {
    await assert.rejects(createServer({ modelDir: MODEL, port: 0, adapters: [{ name: 'wrong-base', path: fixturePath('tiny-qwen2-lora') }] }), (error: unknown) => {
      assert.ok(error instanceof PeftError, String(error));
      return true;
    });
  });
});
