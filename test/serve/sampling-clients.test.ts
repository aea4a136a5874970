import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { HumanMessage } from '@langchain/core/messages';
import { ChatOpenAI } from '@langchain/openai';
import { generateText } from 'ai';
import { BASE_MODEL, postOk, startServer, type TestServer } from './harness.js';

interface Chat {
  choices: { message: { content: string }; logprobs: { content: { token: string; logprob: number; top_logprobs: { token: string; logprob: number }[] }[] } | null }[];
}

const QUESTION = 'Explain LoRA in one line.';
/** vLLM's sampling extensions and logit_bias, each changing the output of a seeded sampled run. */
const EXTENSIONS = { min_p: 0.05, min_tokens: 6, ignore_eos: true, stop_token_ids: [17], logit_bias: { '40': 5 } };

describe('sampling fields and log-probabilities through the Vercel AI SDK and LangChain JS', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(() => t.server.close());

  const direct = (body: object) => postOk<Chat>(t.baseURL, '/chat/completions', { model: BASE_MODEL, messages: [{ role: 'user', content: QUESTION }], max_tokens: 10, ...body });

  it('AI SDK (@ai-sdk/openai chat) logprobs: the provider metadata holds the server\'s log-probabilities', async () => {
    const openai = createOpenAI({ baseURL: t.baseURL, apiKey: 'unused' });
    const r = await generateText({ model: openai.chat(BASE_MODEL), prompt: QUESTION, maxOutputTokens: 10, temperature: 0, maxRetries: 0, providerOptions: { openai: { logprobs: 2 } } });
    const expected = await direct({ temperature: 0, logprobs: true, top_logprobs: 2 });
    assert.equal(r.text, expected.choices[0]!.message.content);
    const got = r.providerMetadata?.['openai']?.['logprobs'] as { token: string; logprob: number; top_logprobs: { token: string; logprob: number }[] }[];
    assert.deepEqual(got.map((e) => [e.token, e.logprob, e.top_logprobs.map((x) => [x.token, x.logprob])]), expected.choices[0]!.logprobs!.content.map((e) => [e.token, e.logprob, e.top_logprobs.map((x) => [x.token, x.logprob])]));
  });

  it('AI SDK (@ai-sdk/openai-compatible) passes vLLM\'s extensions through providerOptions, with the output a direct request gets', async () => {
    const provider = createOpenAICompatible({ name: 'loraforge', baseURL: t.baseURL });
    for (const seed of [1, 2]) {
      const r = await generateText({ model: provider(BASE_MODEL), prompt: QUESTION, maxOutputTokens: 10, temperature: 1, seed, maxRetries: 0, providerOptions: { loraforge: EXTENSIONS } });
      const expected = await direct({ temperature: 1, seed, ...EXTENSIONS });
      const without = await direct({ temperature: 1, seed });
      assert.equal(r.text, expected.choices[0]!.message.content, `seed ${seed}`);
      assert.notEqual(r.text, without.choices[0]!.message.content, `seed ${seed}: the extensions change the output`);
    }
  });

  it('LangChain ChatOpenAI: logprobs and top_logprobs, n choices, and vLLM\'s extensions through modelKwargs', async () => {
    const chat = new ChatOpenAI({ model: BASE_MODEL, apiKey: 'unused', configuration: { baseURL: t.baseURL }, temperature: 0, maxTokens: 10, maxRetries: 0, logprobs: true, topLogprobs: 2 });
    const reply = await chat.invoke(QUESTION);
    const expected = await direct({ temperature: 0, logprobs: true, top_logprobs: 2 });
    const got = (reply.response_metadata['logprobs'] as Chat['choices'][number]['logprobs'])!.content;
    assert.deepEqual(got.map((e) => [e.token, e.logprob]), expected.choices[0]!.logprobs!.content.map((e) => [e.token, e.logprob]));

    const two = new ChatOpenAI({ model: BASE_MODEL, apiKey: 'unused', configuration: { baseURL: t.baseURL }, temperature: 1, maxTokens: 10, maxRetries: 0, n: 2, modelKwargs: { seed: 3 } });
    const generations = (await two.generate([[new HumanMessage(QUESTION)]])).generations[0]!;
    const expectedTwo = await direct({ temperature: 1, seed: 3, n: 2 });
    assert.deepEqual(generations.map((g) => g.text), expectedTwo.choices.map((c) => c.message.content));

    const extended = new ChatOpenAI({ model: BASE_MODEL, apiKey: 'unused', configuration: { baseURL: t.baseURL }, temperature: 1, maxTokens: 10, maxRetries: 0, modelKwargs: { seed: 4, ...EXTENSIONS } });
    assert.equal((await extended.invoke(QUESTION)).content, (await direct({ temperature: 1, seed: 4, ...EXTENSIONS })).choices[0]!.message.content);
  });
});
