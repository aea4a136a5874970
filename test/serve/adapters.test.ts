import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generate } from '../../src/generate/index.js';
import { PeftModel } from '../../src/peft/index.js';
import { peftAdapterBackend } from '../../src/serve/peft-adapter-backend.js';
import { fixturePath } from '../helpers/fixtures.js';
import {
  adapterDir,
  ADAPTER_VARIANTS,
  BASE_MODEL,
  decodeOutput,
  fixtureGeneration,
  fixturePrompt,
  fixtureTokenizer,
  loadFixtureModel,
  rawRequest,
  startServer,
  type AdapterVariant,
  type TestServer,
} from './harness.js';

const MESSAGES = [{ role: 'user' as const, content: 'Explain LoRA in one line.' }];

/** Text of a streamed completion or chat response. */
async function collect(stream: AsyncIterable<{ choices: { text?: string; delta?: { content?: string | null } }[] }>): Promise<string> {
  let text = '';
  for await (const chunk of stream) for (const c of chunk.choices) text += c.text ?? c.delta?.content ?? '';
  return text;
}

describe('adapters over one base model', () => {
  let t: TestServer;
  let prompt: number[];
  /** The library's own greedy chat continuation per model name (PEFT generate with that adapter per row). */
  const chatReference = new Map<string, string>();

  before(async () => {
    t = await startServer({ adapters: ADAPTER_VARIANTS.map((v) => ({ name: v, path: adapterDir(v) })), adapterRoot: fixturePath(), maxAdapters: 8 });
    prompt = await fixturePrompt();
    const tokenizer = await fixtureTokenizer();
    const templated = tokenizer.applyChatTemplate(MESSAGES, { addGenerationPrompt: true });
    const model = await loadFixtureModel();
    const peft = await PeftModel.fromPretrained(model, adapterDir('lora'), { adapterName: 'lora' });
    for (const v of ADAPTER_VARIANTS.slice(1)) await peft.loadAdapter(adapterDir(v), v);
    const names = ['__base__', ...ADAPTER_VARIANTS];
    const outputs = await generate(peft.model, names.map(() => templated), { maxNewTokens: 10, eosTokenId: tokenizer.eosTokenIds, adapterNames: names });
    for (let i = 0; i < names.length; i++) chatReference.set(names[i] === '__base__' ? BASE_MODEL : names[i]!, await decodeOutput(outputs[i]!.slice(templated.length)));
  });
  after(() => t.server.close());

  it('lists the base model and every adapter', async () => {
    const models = await t.client().models.list();
    assert.deepEqual(models.data.map((m) => m.id), [BASE_MODEL, ...ADAPTER_VARIANTS]);
    assert.ok(models.data.slice(1).every((m) => (m as unknown as { parent: string }).parent === BASE_MODEL));
  });

  for (const variant of ['base', ...ADAPTER_VARIANTS] as const) {
    const model = variant === 'base' ? BASE_MODEL : variant;
    it(`${model}: completions, streamed and not, equal PEFT's greedy tokens`, async () => {
      const expected = await decodeOutput(await fixtureGeneration(variant));
      const client = t.client();
      const whole = await client.completions.create({ model, prompt, max_tokens: 16, temperature: 0 });
      assert.equal(whole.choices[0]!.text, expected);
      assert.equal(whole.model, model);
      assert.equal(await collect(await client.completions.create({ model, prompt, max_tokens: 16, temperature: 0, stream: true })), expected);
    });

    it(`${model}: chat, streamed and not, equals the library's generate with that adapter`, async () => {
      const client = t.client();
      const whole = await client.chat.completions.create({ model, messages: MESSAGES, max_tokens: 10, temperature: 0 });
      assert.equal(whole.choices[0]!.message.content, chatReference.get(model));
      assert.equal(await collect(await client.chat.completions.create({ model, messages: MESSAGES, max_tokens: 10, temperature: 0, stream: true })), chatReference.get(model));
    });
  }

  it('loads an adapter at run time, serves it, and unloads it', async () => {
    const add = await rawRequest(t.baseURL, 'POST', '/adapters', JSON.stringify({ name: 'tenant-7', path: 'tiny-llama-lora' }));
    assert.equal(add.status, 201, JSON.stringify(add.json));
    const r = await t.client().completions.create({ model: 'tenant-7', prompt, max_tokens: 16, temperature: 0 });
    assert.equal(r.choices[0]!.text, await decodeOutput(await fixtureGeneration('lora')));
    const again = await rawRequest(t.baseURL, 'POST', '/adapters', JSON.stringify({ name: 'tenant-7', path: 'tiny-llama-lora' }));
    assert.equal(again.status, 409);
    const del = await rawRequest(t.baseURL, 'DELETE', '/adapters/tenant-7');
    assert.equal(del.status, 200);
    await assert.rejects(t.client().completions.create({ model: 'tenant-7', prompt, max_tokens: 2 }), (e: { status?: number }) => e.status === 404);
    assert.equal((await rawRequest(t.baseURL, 'DELETE', '/adapters/tenant-7')).status, 404);
  });

  it('refuses an adapter made for another model and keeps serving every other adapter', async () => {
    const bad = await rawRequest(t.baseURL, 'POST', '/adapters', JSON.stringify({ name: 'wrong-base', path: 'tiny-qwen2-lora' }));
    assert.equal(bad.status, 400, JSON.stringify(bad.json));
    assert.equal((bad.json as { error: { code: string } }).error.code, 'adapter_load_failed');
    const models = await t.client().models.list();
    assert.ok(!models.data.some((m) => m.id === 'wrong-base'));
    for (const variant of ADAPTER_VARIANTS) {
      const r = await t.client().completions.create({ model: variant, prompt, max_tokens: 16, temperature: 0 });
      assert.equal(r.choices[0]!.text, await decodeOutput(await fixtureGeneration(variant)));
    }
  });
});

describe('adapter cache bounded by --max-adapters', () => {
  let t: TestServer;
  let prompt: number[];
  const variants: AdapterVariant[] = ['lora', 'lora_qv', 'rslora'];
  before(async () => {
    t = await startServer({ adapters: variants.map((v) => ({ name: v, path: adapterDir(v) })), maxAdapters: 2 });
    prompt = await fixturePrompt();
  });
  after(() => t.server.close());

  it('evicts the least recently used idle adapter and reloads an evicted one on demand, with the same outputs', async () => {
    const origin = t.baseURL.replace(/\/v1$/, '');
    for (const variant of [...variants, ...variants, 'lora_qv', 'lora'] as AdapterVariant[]) {
      const r = await t.client().completions.create({ model: variant, prompt, max_tokens: 16, temperature: 0 });
      assert.equal(r.choices[0]!.text, await decodeOutput(await fixtureGeneration(variant)), variant);
      const metrics = await (await fetch(`${origin}/metrics`)).text();
      assert.match(metrics, /^loraforge_loaded_adapters 2$/m);
    }
    const listed = await rawRequest(t.baseURL, 'GET', '/adapters');
    const loaded = (listed.json as { data: { id: string; loaded: boolean }[] }).data.filter((a) => a.loaded).map((a) => a.id);
    assert.deepEqual(loaded.sort(), ['lora', 'lora_qv']);
  });
});

describe('--adapter-dtype', () => {
  it('stores adapters in the model dtype by default and in the dtype asked for, and serves them', async () => {
    const prompt = await fixturePrompt();
    for (const [asked, stored] of [[undefined, 'float32'], ['bfloat16', 'bfloat16']] as const) {
      const seen: string[] = [];
      const t = await startServer({
        adapters: [{ name: 'lora', path: adapterDir('lora') }],
        ...(asked ? { adapterDtype: asked } : {}),
        adapterBackend: (model, options) => {
          seen.push(options.adapterDtype);
          return peftAdapterBackend(model, options);
        },
      });
      try {
        assert.deepEqual(seen, [stored]);
        const r = await t.client().completions.create({ model: 'lora', prompt, max_tokens: 16, temperature: 0 });
        // The library's own greedy output with the adapter stored the same way.
        const model = await loadFixtureModel();
        const peft = await PeftModel.fromPretrained(model, adapterDir('lora'), { dtype: stored });
        const [ids] = await generate(peft.model, [prompt], { maxNewTokens: 16, eosTokenId: null });
        assert.equal(r.choices[0]!.text, await decodeOutput(ids!.slice(prompt.length)), `adapters in ${stored}`);
      } finally {
        await t.server.close();
      }
    }
  });
});
