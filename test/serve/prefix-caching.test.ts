/**
 * --enable-prefix-caching on a real port: requests with the same long system prompt share its KV blocks
 * (usage.prompt_tokens_details.cached_tokens) and answer what a server without the cache answers; an adapter never
 * gets the base's or another adapter's blocks; --max-kv-blocks bounds what a request may ask for.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BASE_MODEL, adapterDir, rawRequest, startServer, type TestServer } from './harness.js';
import { parseExposition, sampleValue } from './metrics-exposition.js';

const SYSTEM = 'You are a careful assistant for a small shop that sells tea, coffee and ceramic cups. Answer in one short sentence, politely, and never invent prices or opening hours you were not told about.';

interface CompletionBody {
  choices: { text: string }[];
  usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details?: { cached_tokens: number } };
}

interface ChatBody {
  choices: { message: { content: string } }[];
  usage: { prompt_tokens: number; prompt_tokens_details?: { cached_tokens: number } };
}

describe('prefix caching over HTTP', () => {
  let cached: TestServer;
  let cold: TestServer;
  const adapters = [
    { name: 'lora', path: adapterDir('lora') },
    { name: 'rslora', path: adapterDir('rslora') },
  ];
  before(async () => {
    cached = await startServer({ prefixCaching: true, adapters });
    cold = await startServer({ adapters });
  });
  after(async () => {
    await cached.server.close();
    await cold.server.close();
  });

  async function chat(t: TestServer, model: string, question: string): Promise<ChatBody> {
    const { status, json } = await rawRequest(t.baseURL, 'POST', '/chat/completions', JSON.stringify({
      model,
      messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: question }],
      max_tokens: 12,
      temperature: 0,
    }));
    assert.equal(status, 200, JSON.stringify(json));
    return json as ChatBody;
  }

  it('a second request with the same system prompt reuses its blocks and answers as a server without the cache', async () => {
    const first = await chat(cached, BASE_MODEL, 'Do you sell green tea?');
    const second = await chat(cached, BASE_MODEL, 'Which cups do you have?');
    assert.ok(first.usage.prompt_tokens > 64, `the system prompt spans several blocks (${first.usage.prompt_tokens} tokens)`);
    assert.equal(first.usage.prompt_tokens_details?.cached_tokens, 0);
    const reused = second.usage.prompt_tokens_details?.cached_tokens ?? 0;
    assert.ok(reused >= 48 && reused % 16 === 0 && reused < second.usage.prompt_tokens, `cached_tokens ${reused} of ${second.usage.prompt_tokens}`);
    const expected = await chat(cold, BASE_MODEL, 'Which cups do you have?');
    assert.equal(second.choices[0]!.message.content, expected.choices[0]!.message.content);
    assert.equal(expected.usage.prompt_tokens_details, undefined, 'without the cache usage has no prompt_tokens_details');
  });

  it('adapters share blocks only with themselves, and give the tokens of a cold run', async () => {
    // The base's blocks of this system prompt are cached already; neither adapter may use them.
    const lora1 = await chat(cached, 'lora', 'Do you sell green tea?');
    assert.equal(lora1.usage.prompt_tokens_details?.cached_tokens, 0, "the base's blocks never serve an adapter");
    const rslora1 = await chat(cached, 'rslora', 'Do you sell green tea?');
    assert.equal(rslora1.usage.prompt_tokens_details?.cached_tokens, 0, "nor one adapter's blocks another");
    const lora2 = await chat(cached, 'lora', 'Is the shop open on Sundays?');
    assert.ok((lora2.usage.prompt_tokens_details?.cached_tokens ?? 0) >= 48);
    for (const [model, got] of [['lora', lora2], ['rslora', rslora1]] as const) {
      const question = got === lora2 ? 'Is the shop open on Sundays?' : 'Do you sell green tea?';
      const expected = await chat(cold, model, question);
      assert.equal(got.choices[0]!.message.content, expected.choices[0]!.message.content, model);
    }
    const base = await chat(cached, BASE_MODEL, 'Do you sell green tea?');
    assert.ok((base.usage.prompt_tokens_details?.cached_tokens ?? 0) >= 48, 'the base still finds its own blocks');
  });

  it('reports cached tokens in completions and in the Responses API', async () => {
    const prompt = Array.from({ length: 90 }, (_, i) => (i * 41 + 7) % 384);
    const body = (ids: number[]) => JSON.stringify({ model: BASE_MODEL, prompt: ids, max_tokens: 6, temperature: 0 });
    await rawRequest(cached.baseURL, 'POST', '/completions', body(prompt));
    const again = await rawRequest(cached.baseURL, 'POST', '/completions', body([...prompt, 3, 4]));
    const expected = await rawRequest(cold.baseURL, 'POST', '/completions', body([...prompt, 3, 4]));
    const got = again.json as CompletionBody;
    assert.equal(got.usage.prompt_tokens_details?.cached_tokens, 80);
    assert.equal(got.choices[0]!.text, (expected.json as CompletionBody).choices[0]!.text);
    const input = [{ role: 'system', content: SYSTEM }, { role: 'user', content: 'Hello?' }];
    const response = async () => {
      const r = await rawRequest(cached.baseURL, 'POST', '/responses', JSON.stringify({ model: BASE_MODEL, input, max_output_tokens: 4, temperature: 0 }));
      assert.equal(r.status, 200, JSON.stringify(r.json));
      return (r.json as { usage: { input_tokens_details: { cached_tokens: number } } }).usage.input_tokens_details.cached_tokens;
    };
    await response();
    assert.ok((await response()) >= 48);
  });

  it('counts the cached prompt tokens in /metrics, as usage reports them', async () => {
    const scrape = async (t: TestServer) => parseExposition(await (await fetch(`${t.baseURL.replace(/\/v1$/, '')}/metrics`)).text());
    const count = async (t: TestServer) => sampleValue(await scrape(t), 'loraforge_prompt_cached_tokens_total', { model_name: BASE_MODEL });
    const before = await count(cached);
    const r = await chat(cached, BASE_MODEL, 'Do you sell mugs?');
    const reused = r.usage.prompt_tokens_details?.cached_tokens ?? 0;
    assert.ok(reused > 0);
    assert.equal(await count(cached), before + reused);
    assert.equal(await count(cold), 0, 'nothing is cached without the flag');
  });
});

describe('--max-kv-blocks', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer({ maxKvBlocks: 4 });
  });
  after(() => t.server.close());

  it('refuses a block count that is not a positive whole number before loading the model', async () => {
    for (const bad of [0, 1.5, -3]) await assert.rejects(startServer({ maxKvBlocks: bad }), { name: 'ServeOptionError', message: `--max-kv-blocks must be a positive whole number, got ${bad}.` });
  });

  it('refuses a request that could never fit the pool, naming the field, and defaults max_tokens to what fits', async () => {
    const prompt = Array.from({ length: 40 }, (_, i) => (i * 7 + 1) % 384);
    const tooMany = await rawRequest(t.baseURL, 'POST', '/completions', JSON.stringify({ model: BASE_MODEL, prompt, max_tokens: 30, temperature: 0 }));
    assert.equal(tooMany.status, 400);
    assert.match(JSON.stringify(tooMany.json), /plus max_tokens \(30\) needs more than the KV pool's 4 blocks of 16 positions; lower max_tokens/);
    const long = await rawRequest(t.baseURL, 'POST', '/completions', JSON.stringify({ model: BASE_MODEL, prompt: [...prompt, ...prompt], temperature: 0 }));
    assert.equal(long.status, 400);
    assert.match(JSON.stringify(long.json), /The prompt has 80 tokens and the KV pool holds 64 positions; shorten it/);
    // Chat's default max_tokens is what the context leaves: here what the pool leaves.
    const fits = await rawRequest(t.baseURL, 'POST', '/chat/completions', JSON.stringify({ model: BASE_MODEL, messages: [{ role: 'user', content: 'Hi' }], temperature: 0, ignore_eos: true }));
    assert.equal(fits.status, 200, JSON.stringify(fits.json));
    const usage = (fits.json as CompletionBody).usage;
    assert.equal(usage.prompt_tokens + usage.completion_tokens, 64, 'the default max_tokens fills the pool and no more');
  });
});
