import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseServeArgs } from '../../src/cli/serve.js';
import { SERVER_DEFAULTS } from '../../src/serve/index.js';

describe('loraforge serve: flags', () => {
  it('reads repeated --adapter NAME=DIR and the limits', () => {
    const o = parseServeArgs(['--model', 'm', '--adapter', 'a=dir/a', '--adapter=b=dir/b=x', '--max-batch', '8', '--request-timeout', '2.5', '--port', '0'], {})!;
    assert.deepEqual(o.adapters, [
      { name: 'a', path: 'dir/a' },
      { name: 'b', path: 'dir/b=x' },
    ]);
    assert.equal(o.maxBatch, 8);
    assert.equal(o.requestTimeoutMs, 2500);
    assert.equal(o.port, 0);
  });

  it('defaults to loopback, no key, no run-time adapter loading', () => {
    const o = parseServeArgs(['--model', 'm'], {})!;
    assert.equal(o.host, '127.0.0.1');
    assert.equal(o.port, SERVER_DEFAULTS.port);
    assert.equal(o.apiKey, null);
    assert.equal(o.adapterRoot, null);
    assert.equal(o.maxAdapters, SERVER_DEFAULTS.maxAdapters);
    assert.equal(o.adapterDtype, 'model');
  });

  it('reads --allowed-hosts as a comma-separated list and defaults to none', () => {
    assert.deepEqual(parseServeArgs(['--model', 'm', '--allowed-hosts', 'a.example, b.example,'], {})!.allowedHosts, ['a.example', 'b.example']);
    assert.deepEqual(parseServeArgs(['--model', 'm'], {})!.allowedHosts, []);
  });

  it('reads repeated --cors-origin and defaults to none', () => {
    assert.deepEqual(parseServeArgs(['--model', 'm', '--cors-origin', 'https://a.example', '--cors-origin=*'], {})!.corsOrigins, ['https://a.example', '*']);
    assert.deepEqual(parseServeArgs(['--model', 'm'], {})!.corsOrigins, []);
  });

  it('reads --enable-prefix-caching and --max-kv-blocks, off and unbounded by default', () => {
    const o = parseServeArgs(['--model', 'm', '--enable-prefix-caching', '--max-kv-blocks', '512'], {})!;
    assert.equal(o.prefixCaching, true);
    assert.equal(o.maxKvBlocks, 512);
    const d = parseServeArgs(['--model', 'm'], {})!;
    assert.equal(d.prefixCaching, false);
    assert.equal(d.maxKvBlocks, undefined);
    assert.throws(() => parseServeArgs(['--model', 'm', '--max-kv-blocks', '0'], {}), { name: 'UsageError' });
    assert.throws(() => parseServeArgs(['--model', 'm', '--max-kv-blocks', '2.5'], {}), { name: 'UsageError' });
  });

  it('reads --qlora (NF4 on load), off by default', () => {
    assert.equal(parseServeArgs(['--model', 'm', '--qlora'], {})!.qlora, true);
    assert.equal(parseServeArgs(['--model', 'm'], {})!.qlora, false);
  });

  it('reads --adapter-dtype and refuses other values', () => {
    assert.equal(parseServeArgs(['--model', 'm', '--adapter-dtype', 'float32'], {})!.adapterDtype, 'float32');
    assert.throws(() => parseServeArgs(['--model', 'm', '--adapter-dtype', 'int8'], {}), { name: 'UsageError' });
  });

  it('takes the API key from LORAFORGE_API_KEY unless --api-key is given', () => {
    assert.equal(parseServeArgs(['--model', 'm'], { LORAFORGE_API_KEY: 'k1' })!.apiKey, 'k1');
    assert.equal(parseServeArgs(['--model', 'm', '--api-key', 'k2'], { LORAFORGE_API_KEY: 'k1' })!.apiKey, 'k2');
  });

  it('refuses a missing --model, a malformed --adapter, unknown flags and bad numbers', () => {
    for (const argv of [[], ['--model', 'm', '--adapter', 'noequals'], ['--model', 'm', '--adapter', '=dir'], ['--model', 'm', '--bogus', '1'], ['--model', 'm', '--max-batch', '0'], ['--model', 'm', 'extra']]) {
      assert.throws(() => parseServeArgs(argv, {}), { name: 'UsageError' }, argv.join(' '));
    }
  });

  it('returns null for --help', () => {
    assert.equal(parseServeArgs(['--help'], {}), null);
  });
});
