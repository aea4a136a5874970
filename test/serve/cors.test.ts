import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { BASE_MODEL, fixturePrompt, startServer, type TestServer } from './harness.js';

const KEY = 'cors-test-key';
const APP = 'https://app.example';
const DEV = 'http://localhost:5173';
const OTHER = 'https://attacker.example';
const ALLOWED_HEADERS =
  'Authorization, Content-Type, OpenAI-Organization, OpenAI-Project, OpenAI-Beta, User-Agent, X-Stainless-Lang, X-Stainless-Package-Version, X-Stainless-OS, X-Stainless-Arch, X-Stainless-Runtime, X-Stainless-Runtime-Version, X-Stainless-Retry-Count, X-Stainless-Timeout, X-Stainless-Helper-Method';

/** The headers a browser adds to a preflight for a POST with a JSON body and the API key. */
const preflightHeaders = (origin: string) => ({ origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' });

function corsHeaders(res: Response): Record<string, string> {
  return Object.fromEntries([...res.headers].filter(([name]) => name.startsWith('access-control-') || name === 'vary'));
}

describe('CORS: answered only for the origins given to --cors-origin', () => {
  let listed: TestServer;
  let wildcard: TestServer;
  let plain: TestServer;
  let prompt: number[];

  before(async () => {
    listed = await startServer({ corsOrigins: [APP, DEV], apiKey: KEY });
    wildcard = await startServer({ corsOrigins: ['*'] });
    plain = await startServer();
    prompt = await fixturePrompt();
  });
  after(async () => {
    await Promise.all([listed.server.close(), wildcard.server.close(), plain.server.close()]);
  });

  const completion = (t: TestServer, origin: string, extra: object = {}) =>
    fetch(`${t.baseURL}/completions`, {
      method: 'POST',
      headers: { origin, 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ model: BASE_MODEL, prompt, max_tokens: 4, temperature: 0, ...extra }),
    });

  it('answers a preflight from a listed origin with 204, the methods, the headers and a max age, without the API key', async () => {
    const res = await fetch(`${listed.baseURL}/completions`, { method: 'OPTIONS', headers: preflightHeaders(DEV) });
    assert.equal(res.status, 204);
    assert.equal(await res.text(), '');
    assert.deepEqual(corsHeaders(res), {
      'access-control-allow-origin': DEV,
      'access-control-allow-methods': 'GET, POST, DELETE',
      'access-control-allow-headers': ALLOWED_HEADERS,
      'access-control-max-age': '7200',
      vary: 'Origin',
    });
  });

  it('allows every request header a page cannot send without permission that the official openai client sends', async () => {
    const sent = new Set<string>();
    const client = new OpenAI({
      baseURL: listed.baseURL,
      apiKey: KEY,
      organization: 'org-1',
      project: 'proj-1',
      maxRetries: 0,
      timeout: 30_000,
      fetch: async (url, init) => {
        for (const [name] of new Headers(init?.headers)) sent.add(name);
        return fetch(url, init);
      },
    });
    await client.completions.create({ model: BASE_MODEL, prompt, max_tokens: 2, temperature: 0 });
    await client.chat.completions.stream({ model: BASE_MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, temperature: 0 }).finalChatCompletion();
    // CORS-safelisted request headers need no permission.
    const needPermission = [...sent].filter((name) => !['accept', 'accept-language', 'content-language'].includes(name));
    const res = await fetch(`${listed.baseURL}/chat/completions`, { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': needPermission.join(',') } });
    const allowed = new Set(res.headers.get('access-control-allow-headers')!.toLowerCase().split(', '));
    assert.deepEqual(needPermission.filter((name) => !allowed.has(name)), []);
    assert.ok(needPermission.includes('x-stainless-helper-method') && needPermission.includes('openai-project'), [...sent].join(','));
  });

  it('marks a JSON response to a listed origin readable by it', async () => {
    const res = await completion(listed, APP);
    assert.equal(res.status, 200);
    assert.deepEqual(corsHeaders(res), { 'access-control-allow-origin': APP, vary: 'Origin' });
  });

  it('marks a streamed (server-sent events) response to a listed origin readable by it', async () => {
    const res = await completion(listed, APP, { stream: true });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    assert.deepEqual(corsHeaders(res), { 'access-control-allow-origin': APP, vary: 'Origin' });
    assert.ok((await res.text()).endsWith('data: [DONE]\n\n'));
  });

  it('marks an error response to a listed origin readable by it, so the page sees a missing API key', async () => {
    const res = await fetch(`${listed.baseURL}/models`, { headers: { origin: APP } });
    assert.equal(res.status, 401);
    assert.deepEqual(corsHeaders(res), { 'access-control-allow-origin': APP, vary: 'Origin' });
  });

  it('sends an unlisted origin no CORS headers and refuses its preflight as a server without CORS does', async () => {
    const preflight = await fetch(`${listed.baseURL}/completions`, { method: 'OPTIONS', headers: preflightHeaders(OTHER) });
    assert.equal(preflight.status, 404);
    assert.deepEqual(await preflight.json(), { error: { message: 'No route OPTIONS /v1/completions.', type: 'invalid_request_error', param: null, code: 'not_found' } });
    const res = await completion(listed, OTHER);
    assert.equal(res.status, 200);
    assert.deepEqual(corsHeaders(preflight), { vary: 'Origin' });
    assert.deepEqual(corsHeaders(res), { vary: 'Origin' });
  });

  it('checks the Host header before answering a preflight', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: listed.server.port, method: 'OPTIONS', path: '/v1/completions', headers: { host: `rebound.example:${listed.server.port}`, ...preflightHeaders(APP) } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.once('error', reject);
      req.end();
    });
    assert.equal(status, 403);
  });

  it('lets any origin in with "*", answering its preflight and its requests with Access-Control-Allow-Origin: *', async () => {
    const preflight = await fetch(`${wildcard.baseURL}/completions`, { method: 'OPTIONS', headers: preflightHeaders(OTHER) });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), '*');
    const res = await completion(wildcard, OTHER, { stream: true });
    await res.text();
    assert.deepEqual(corsHeaders(res), { 'access-control-allow-origin': '*', vary: 'Origin' });
  });

  it('sends no CORS headers at all without --cors-origin: JSON, streamed and preflight answers', async () => {
    const json = await completion(plain, APP);
    const stream = await completion(plain, APP, { stream: true });
    await stream.text();
    const preflight = await fetch(`${plain.baseURL}/completions`, { method: 'OPTIONS', headers: preflightHeaders(APP) });
    assert.deepEqual([json.status, stream.status, preflight.status], [200, 200, 404]);
    for (const res of [json, stream, preflight]) assert.deepEqual(corsHeaders(res), {});
  });
});
