/**
 * /v1/completions' echo and best_of through the Vercel AI SDK (@ai-sdk/openai's completion model) and LangChain JS
 * (@langchain/openai's OpenAI LLM), over a real port: each client's text equals what the same request sent directly
 * returns, and the fields visibly take effect (echo prefixes the prompt; best_of changes a seeded sampled answer).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
import { OpenAI } from '@langchain/openai';
import { generateText } from 'ai';
import { BASE_MODEL, postOk, startServer, type TestServer } from './harness.js';

interface Completion {
  choices: { text: string }[];
}

const PROMPT = 'Low-rank adapters are';

describe('completions echo and best_of through the AI SDK and LangChain JS', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(() => t.server.close());

  const direct = async (body: object) => (await postOk<Completion>(t.baseURL, '/completions', { model: BASE_MODEL, prompt: PROMPT, max_tokens: 8, ...body })).choices[0]!.text;

  it('AI SDK (@ai-sdk/openai completion model): echo through providerOptions returns the prompt and its continuation', async () => {
    const openai = createOpenAI({ baseURL: t.baseURL, apiKey: 'unused' });
    const r = await generateText({ model: openai.completion(BASE_MODEL), prompt: PROMPT, maxOutputTokens: 8, temperature: 0, maxRetries: 0, providerOptions: { openai: { echo: true } } });
    // The SDK's completion model sends its prompt as a "user:/assistant:" transcript.
    const sent = `user:\n${PROMPT}\n\nassistant:\n`;
    assert.equal(r.text, await direct({ prompt: sent, temperature: 0, echo: true }));
    assert.ok(r.text.startsWith(sent), `echoed text starts with the prompt: ${JSON.stringify(r.text)}`);
    assert.equal(r.text.slice(sent.length), await direct({ prompt: sent, temperature: 0 }));
  });

  it('LangChain OpenAI (completions): bestOf picks among seeded candidates as the server does, and echo through modelKwargs', async () => {
    const seededAnswers = new Set<string>();
    for (const seed of [3, 4, 5]) {
      const llm = new OpenAI({ model: BASE_MODEL, apiKey: 'unused', configuration: { baseURL: t.baseURL }, maxTokens: 8, temperature: 1.5, bestOf: 4, maxRetries: 0, modelKwargs: { seed } });
      const text = await llm.invoke(PROMPT);
      assert.equal(text, await direct({ temperature: 1.5, best_of: 4, seed }));
      seededAnswers.add(text);
      // best_of 4 keeps the most likely of four samples, which is not always the seed's first sample.
      if (text !== (await direct({ temperature: 1.5, seed }))) seededAnswers.add('best_of changed the answer');
    }
    assert.ok(seededAnswers.has('best_of changed the answer'), 'for some seed, best_of 4 returns another answer than the single sample');
    const echoing = new OpenAI({ model: BASE_MODEL, apiKey: 'unused', configuration: { baseURL: t.baseURL }, maxTokens: 8, temperature: 0, maxRetries: 0, modelKwargs: { echo: true } });
    assert.equal(await echoing.invoke(PROMPT), await direct({ temperature: 0, echo: true }));
  });
});
