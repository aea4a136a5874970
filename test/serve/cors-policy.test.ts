import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { corsPolicy } from '../../src/serve/cors.js';
import { ServeOptionError } from '../../src/serve/index.js';

describe('--cors-origin values', () => {
  it('gives no policy when no origin is listed', () => {
    assert.equal(corsPolicy([]), null);
  });

  it('keeps origins as browsers send them: lower case, trimmed, without the scheme\'s default port', () => {
    assert.deepEqual(corsPolicy([' HTTPS://App.Example ', 'http://localhost:80', 'https://a.example:443', 'http://127.0.0.1:8080', 'http://[::1]:3000', 'app://local-ui']), {
      any: false,
      origins: new Set(['https://app.example', 'http://localhost', 'https://a.example', 'http://127.0.0.1:8080', 'http://[::1]:3000', 'app://local-ui']),
    });
  });

  it('lets "*" allow any origin', () => {
    assert.deepEqual(corsPolicy(['*', 'https://app.example']), { any: true, origins: new Set(['https://app.example']) });
  });

  it('refuses values that are not scheme://host[:port]', () => {
    for (const value of ['', 'app.example', 'https://app.example/', 'https://app.example/path', 'https://app.example?x=1', 'https://user@app.example', 'https://app.example:0', 'https://app.example:65536', 'https://app..example', '//app.example', 'https://*.example', 'null']) {
      assert.throws(
        () => corsPolicy([value]),
        new ServeOptionError(`--cors-origin ${JSON.stringify(value)} is not an origin; give scheme://host[:port] with no path, such as https://app.example or http://localhost:5173, or * for any origin.`),
        value,
      );
    }
  });
});
