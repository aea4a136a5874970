import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allowedHostNames, hostMatches, isLoopbackHost } from '../../src/serve/host-check.js';
import { ServeOptionError } from '../../src/serve/index.js';

describe('Host header check', () => {
  it('counts 127.0.0.0/8, ::1 and localhost as loopback, nothing else', () => {
    assert.deepEqual(['127.0.0.1', '127.9.8.7', '::1', '[::1]', 'localhost', 'LocalHost', '0.0.0.0', '::', '10.0.0.1', 'example.com'].map(isLoopbackHost), [true, true, true, true, true, true, false, false, false, false]);
  });

  it('checks a loopback server against the loopback names and --allowed-hosts', () => {
    assert.deepEqual(allowedHostNames('127.0.0.1', []), new Set(['localhost', '127.0.0.1', '[::1]']));
    assert.deepEqual(allowedHostNames('::1', [' Models.Internal ']), new Set(['localhost', '127.0.0.1', '[::1]', 'models.internal']));
  });

  it('checks a server on another address only when --allowed-hosts is given, then accepting its own address too', () => {
    assert.equal(allowedHostNames('0.0.0.0', []), null);
    assert.equal(allowedHostNames('10.0.0.5', []), null);
    assert.deepEqual(allowedHostNames('0.0.0.0', ['api.example.com']), new Set(['localhost', '127.0.0.1', '[::1]', 'api.example.com']));
    assert.deepEqual(allowedHostNames('10.0.0.5', ['api.example.com']), new Set(['localhost', '127.0.0.1', '[::1]', 'api.example.com', '10.0.0.5']));
    assert.deepEqual(allowedHostNames('fd00::5', ['[fd00::6]']), new Set(['localhost', '127.0.0.1', '[::1]', '[fd00::6]', '[fd00::5]']));
  });

  it('refuses --allowed-hosts entries that are not host names', () => {
    for (const entry of ['a.example:80', 'http://a.example', 'a..example', '*', '']) {
      assert.throws(() => allowedHostNames('127.0.0.1', [entry]), new ServeOptionError(`--allowed-hosts entry ${JSON.stringify(entry)} is not a host name; give names such as api.example.com or 10.0.0.5, without a port.`));
    }
  });

  it('matches a Host header by name, case-blind, with no port or the server\'s port only', () => {
    const names = new Set(['localhost', '[::1]']);
    const cases: [string, boolean][] = [
      ['localhost', true],
      ['LOCALHOST:8000', true],
      ['[::1]:8000', true],
      ['[::1]', true],
      ['localhost:8001', false],
      ['localhost:', false],
      ['localhost.:8000', false],
      ['evil.example:8000', false],
      ['localhost:8000@evil', false],
      ['', false],
    ];
    assert.deepEqual(cases.map(([header]) => [header, hostMatches(header, names, 8000)]), cases);
  });
});
