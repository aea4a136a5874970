import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { adapterDir, BASE_MODEL, fixtureGeneration, fixturePrompt, fixtureTokenizer, inputRow, loadFixtureModel, ranked, referenceLogprobs, startServer, type TestServer } from './harness.js';

const TOLERANCE = 1e-4;
const MESSAGES = [{ role: 'user' as const, content: 'Explain LoRA in one line.' }];

function close(actual: number | null, expected: number, what: string): void {
  assert.ok(actual !== null && Math.abs(actual - expected) < TOLERANCE, `${what}: ${actual} vs ${expected}`);
}

describe('logprobs, echo, n and best_of', () => {
  let t: TestServer;
  let model: CausalLM;
  let prompt: number[];
  before(async () => {
    t = await startServer({ adapters: [{ name: 'lora', path: adapterDir('lora') }, { name: 'rslora', path: adapterDir('rslora') }] });
    model = await loadFixtureModel();
    prompt = await fixturePrompt();
  });
  after(() => t.server.close());

  it('logprobs are log_softmax of the raw model logits, with the top alternatives in order', async () => {
    const greedy = await fixtureGeneration('base');
    const r = await t.client().completions.create({ model: BASE_MODEL, prompt, max_tokens: 6, temperature: 0, logprobs: 3 });
    const lp = r.choices[0]!.logprobs!;
    for (let i = 0; i < 6; i++) {
      const reference = await referenceLogprobs(model, [...prompt, ...greedy.slice(0, i)]);
      const order = ranked(reference);
      close(lp.token_logprobs![i]!, reference[greedy[i]!]!, `token ${i}`);
      const top = Object.values(lp.top_logprobs![i]!).sort((a, b) => b - a);
      order.slice(0, 3).forEach((id, k) => close(top[k]!, reference[id]!, `token ${i} alternative ${k}`));
    }
  });

  it('chat logprobs ignore temperature and logit_bias: a biased, sampled token has its raw log-probability', async () => {
    const tokenizer = await fixtureTokenizer();
    const templated = tokenizer.applyChatTemplate(MESSAGES, { addGenerationPrompt: true });
    const r = await t.client().chat.completions.create({ model: BASE_MODEL, messages: MESSAGES, max_tokens: 3, temperature: 1.7, seed: 5, logit_bias: { '40': 100 }, logprobs: true, top_logprobs: 2 });
    const content = r.choices[0]!.logprobs!.content!;
    assert.deepEqual(content.map((c) => c.token), ['F', 'F', 'F']);
    for (let i = 0; i < 3; i++) {
      const reference = await referenceLogprobs(model, [...templated, ...new Array<number>(i).fill(40)]);
      close(content[i]!.logprob, reference[40]!, `token ${i}`);
      assert.deepEqual(content[i]!.bytes, [0x46]);
      const order = ranked(reference);
      content[i]!.top_logprobs.forEach((top, k) => close(top.logprob, reference[order[k]!]!, `token ${i} alternative ${k}`));
    }
  });

  it('streams the same chat logprobs as the whole response', async () => {
    const body = { model: BASE_MODEL, messages: MESSAGES, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 2 } as const;
    const whole = await t.client().chat.completions.create(body);
    const streamed: unknown[] = [];
    for await (const chunk of await t.client().chat.completions.create({ ...body, stream: true })) for (const c of chunk.choices) streamed.push(...(c.logprobs?.content ?? []));
    assert.deepEqual(streamed, whole.choices[0]!.logprobs!.content);
  });

  it('completions logprobs: one entry per token, top_logprobs holding the chosen token, partial characters as bytes', async () => {
    const r = await t.client().completions.create({ model: BASE_MODEL, prompt, max_tokens: 5, temperature: 0, logprobs: 2 });
    const lp = r.choices[0]!.logprobs!;
    assert.equal(lp.tokens!.length, 5);
    for (let i = 0; i < 5; i++) {
      const top = lp.top_logprobs![i]!;
      assert.equal(top[lp.tokens![i]!], lp.token_logprobs![i]);
      // Greedy: the chosen token is the most likely, so the map is exactly the top 2.
      assert.equal(Object.keys(top).length, 2);
    }
    // The fixture's first greedy token is the first byte of a two-byte character.
    assert.match(lp.tokens![0]!, /^bytes:(\\x[0-9a-f]{2})+$/);
    assert.equal(lp.tokens![1], 'V');
    // Its text is released with the next token's, so both start at 0; offsets never decrease or pass the text.
    assert.deepEqual(lp.text_offset!.slice(0, 2), [0, 0]);
    const offsets = lp.text_offset!;
    assert.ok(offsets.every((o, i) => o <= r.choices[0]!.text.length && (i === 0 || o >= offsets[i - 1]!)));
  });

  it('echo prepends the prompt; with logprobs its tokens come first, the first with null', async () => {
    const tokenizer = await fixtureTokenizer();
    const text = 'Low-rank adaptation trains A and B';
    const ids = tokenizer.encode(text);
    const plain = await t.client().completions.create({ model: BASE_MODEL, prompt: text, max_tokens: 4, temperature: 0 });
    const r = await t.client().completions.create({ model: BASE_MODEL, prompt: text, max_tokens: 4, temperature: 0, echo: true, logprobs: 1 });
    assert.equal(r.choices[0]!.text, text + plain.choices[0]!.text);
    const lp = r.choices[0]!.logprobs!;
    assert.equal(lp.tokens!.length, ids.length + 4);
    assert.equal(lp.token_logprobs![0], null);
    assert.equal(lp.top_logprobs![0], null);
    for (let i = 1; i < ids.length; i++) close(lp.token_logprobs![i]!, (await referenceLogprobs(model, ids.slice(0, i)))[ids[i]!]!, `prompt token ${i}`);
    // The prompt's tokens are whole ASCII words: each offset is the length of the tokens before it.
    const tokens = lp.tokens!.slice(0, ids.length);
    assert.equal(tokens.join(''), text);
    assert.deepEqual(lp.text_offset!.slice(0, ids.length), tokens.map((_, i) => tokens.slice(0, i).join('').length));
    assert.equal(lp.text_offset![ids.length], text.length);
    const echoOnly = await t.client().completions.create({ model: BASE_MODEL, prompt: text, max_tokens: 4, temperature: 0, echo: true });
    assert.equal(echoOnly.choices[0]!.text, r.choices[0]!.text);
    assert.equal(echoOnly.choices[0]!.logprobs, null);
  });

  it('n = 3 with a seed: three choices, reproducible, choice i equal to n = 1 with seed + i', async () => {
    const body = { model: BASE_MODEL, prompt, max_tokens: 12, temperature: 1, seed: 41, n: 3 };
    const a = await t.client().completions.create(body);
    const b = await t.client().completions.create(body);
    assert.deepEqual(a.choices.map((c) => c.index), [0, 1, 2]);
    assert.deepEqual(a.choices.map((c) => c.text), b.choices.map((c) => c.text));
    assert.equal(new Set(a.choices.map((c) => c.text)).size, 3);
    for (let i = 0; i < 3; i++) {
      const single = await t.client().completions.create({ ...body, n: 1, seed: 41 + i });
      assert.equal(a.choices[i]!.text, single.choices[0]!.text, `choice ${i}`);
    }
    assert.equal(a.usage!.completion_tokens, 36);
    const chat = await t.client().chat.completions.create({ model: 'lora', messages: MESSAGES, max_tokens: 6, temperature: 1, seed: 3, n: 2 });
    const chatSingle = await t.client().chat.completions.create({ model: 'lora', messages: MESSAGES, max_tokens: 6, temperature: 1, seed: 4 });
    assert.equal(chat.choices[1]!.message.content, chatSingle.choices[0]!.message.content);
  });

  it('streams n choices by index, each adding up to its whole-response text', async () => {
    const body = { model: BASE_MODEL, prompt, max_tokens: 8, temperature: 1, seed: 9, n: 2 };
    const whole = await t.client().completions.create(body);
    const texts = ['', ''];
    const finishes: (string | null)[] = [null, null];
    for await (const chunk of await t.client().completions.create({ ...body, stream: true })) {
      for (const c of chunk.choices) {
        texts[c.index] += c.text;
        finishes[c.index] = c.finish_reason ?? finishes[c.index]!;
      }
    }
    assert.deepEqual(texts, whole.choices.map((c) => c.text));
    assert.deepEqual(finishes, ['length', 'length']);
  });

  it('best_of returns the n sequences with the highest mean log-probability, counting every sequence\'s tokens', async () => {
    const body = { model: BASE_MODEL, prompt, max_tokens: 6, temperature: 1.5, seed: 100 };
    const candidates = [];
    for (let i = 0; i < 4; i++) {
      const r = await t.client().completions.create({ ...body, seed: 100 + i, logprobs: 0 });
      const lps = r.choices[0]!.logprobs!.token_logprobs as number[];
      candidates.push({ text: r.choices[0]!.text, mean: lps.reduce((s, x) => s + x, 0) / lps.length });
    }
    const best = [...candidates].sort((x, y) => y.mean - x.mean).slice(0, 2);
    const r = await t.client().completions.create({ ...body, n: 2, best_of: 4 });
    assert.deepEqual(r.choices.map((c) => c.text), best.map((c) => c.text));
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1]);
    assert.equal(r.choices[0]!.logprobs, null);
    assert.equal(r.usage!.completion_tokens, 24);
  });

  it('refuses best_of below n and best_of above n when streaming, naming best_of', async () => {
    await assert.rejects(t.client().completions.create({ model: BASE_MODEL, prompt, n: 3, best_of: 2 }), (e: { status?: number; param?: string; message?: string }) => e.status === 400 && e.param === 'best_of' && /"best_of" \(2\) must be at least "n" \(3\)\./.test(e.message ?? ''));
    await assert.rejects(t.client().completions.create({ model: BASE_MODEL, prompt, best_of: 2, stream: true }), (e: { status?: number; param?: string }) => e.status === 400 && e.param === 'best_of');
  });

  it('gives a request the same choices and logprobs alone and in a mixed batch with adapters', async () => {
    const body = { model: 'lora', prompt, max_tokens: 10, temperature: 1, seed: 77, n: 2, logprobs: 2 };
    const alone = await t.client().completions.create(body);
    const others = await Promise.all([
      inputRow(1, 9).then((p) => t.client().completions.create({ model: 'rslora', prompt: p, max_tokens: 14, temperature: 0.8, seed: 1, logprobs: 1 })),
      inputRow(2, 5).then((p) => t.client().completions.create({ model: BASE_MODEL, prompt: p, max_tokens: 14, temperature: 0 })),
      t.client().completions.create(body),
      inputRow(0, 11).then((p) => t.client().completions.create({ model: 'lora', prompt: p, max_tokens: 14, temperature: 0, logprobs: 3 })),
    ]);
    assert.deepEqual(others[2]!.choices, alone.choices);
  });
});
