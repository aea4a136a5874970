import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { BASE_MODEL, decodeOutput, fixtureGeneration, fixturePrompt, loadFixtureModel, postOk, ranked, rawRequest, referenceLogprobs, startServer, type TestServer } from './harness.js';

interface Completion {
  choices: { text: string; finish_reason: string; index: number }[];
  usage: { completion_tokens: number };
}

/** The fixture's EOS id (config.json's eos_token_id, also the tokenizer's). */
const EOS = 0;

describe('sampling and stopping fields of OpenAI and vLLM, each as its definition says', () => {
  let t: TestServer;
  let model: CausalLM;
  let prompt: number[];
  let greedy: number[];
  const complete = (body: object) => postOk<Completion>(t.baseURL, '/completions', { model: BASE_MODEL, prompt, max_tokens: 8, temperature: 0, ...body });
  before(async () => {
    t = await startServer();
    model = await loadFixtureModel();
    prompt = await fixturePrompt();
    greedy = await fixtureGeneration('base');
  });
  after(() => t.server.close());

  it('logit_bias -100 on the greedy token makes the first pick the second most likely token', async () => {
    const order = ranked(await referenceLogprobs(model, prompt));
    assert.equal(order[0], greedy[0]);
    const r = await t.client().completions.create({ model: BASE_MODEL, prompt, max_tokens: 1, temperature: 0, logit_bias: { [String(order[0])]: -100 } });
    assert.equal(r.choices[0]!.text, await decodeOutput([order[1]!]));
  });

  it('logit_bias +100 makes a token the pick of every greedy step', async () => {
    const r = await t.client().completions.create({ model: BASE_MODEL, prompt, max_tokens: 5, temperature: 0, logit_bias: { '40': 100 } });
    assert.equal(r.choices[0]!.text, await decodeOutput([40, 40, 40, 40, 40]));
  });

  it('refuses logit_bias keys that are not token ids and values outside -100..100, naming logit_bias', async () => {
    for (const [bias, message] of [
      [{ abc: 1 }, '"logit_bias" key "abc" is not a token id; ids are integers from 0 to 383.'],
      [{ '384': 1 }, '"logit_bias" key "384" is not a token id; ids are integers from 0 to 383.'],
      [{ '5': 101 }, '"logit_bias" value for token 5 must be a number from -100 to 100.'],
    ] as const) {
      const { status, json } = await rawRequest(t.baseURL, 'POST', '/completions', JSON.stringify({ model: BASE_MODEL, prompt, logit_bias: bias }));
      assert.equal(status, 400);
      assert.deepEqual((json as { error: object }).error, { message, type: 'invalid_request_error', param: 'logit_bias', code: null });
    }
  });

  it('stop_token_ids ends the choice at the first such token with finish_reason stop, its text left out', async () => {
    const at = 4;
    const stopId = greedy[at]!;
    const first = greedy.indexOf(stopId);
    const r = await complete({ max_tokens: 16, stop_token_ids: [stopId] });
    assert.equal(r.choices[0]!.finish_reason, 'stop');
    assert.equal(r.usage.completion_tokens, first + 1);
    assert.equal(r.choices[0]!.text, await decodeOutput(greedy.slice(0, first)));
  });

  it('include_stop_str_in_output keeps the stop token\'s text and the stop string', async () => {
    const stopId = greedy[4]!;
    const first = greedy.indexOf(stopId);
    const withToken = await complete({ max_tokens: 16, stop_token_ids: [stopId], include_stop_str_in_output: true });
    assert.equal(withToken.choices[0]!.text, await decodeOutput(greedy.slice(0, first + 1)));
    const expected = await decodeOutput(greedy);
    const stop = expected.slice(5, 8);
    const withString = await complete({ max_tokens: 16, stop: [stop], include_stop_str_in_output: true });
    assert.equal(withString.choices[0]!.text, expected.slice(0, expected.indexOf(stop) + stop.length));
    assert.equal(withString.choices[0]!.finish_reason, 'stop');
  });

  it('ends at EOS, and ignore_eos or LoRAX\'s ignore_eos_token generate through it to max_tokens', async () => {
    const forceEos = { logit_bias: { [String(EOS)]: 100 }, max_tokens: 4 };
    const ended = await complete(forceEos);
    assert.deepEqual([ended.choices[0]!.finish_reason, ended.usage.completion_tokens, ended.choices[0]!.text], ['stop', 1, '']);
    for (const field of ['ignore_eos', 'ignore_eos_token']) {
      const r = await complete({ ...forceEos, [field]: true });
      assert.deepEqual([r.choices[0]!.finish_reason, r.usage.completion_tokens, r.choices[0]!.text], ['length', 4, ''], field);
    }
  });

  it('skip_special_tokens false leaves special tokens in the text', async () => {
    const r = await complete({ logit_bias: { [String(EOS)]: 100 }, max_tokens: 2, ignore_eos: true, skip_special_tokens: false });
    assert.equal(r.choices[0]!.text, '<|endoftext|><|endoftext|>');
  });

  it('min_tokens masks the stop tokens until that many tokens are generated, then lets them end the choice', async () => {
    const stopId = greedy[0]!;
    const without = await complete({ stop_token_ids: [stopId] });
    assert.equal(without.usage.completion_tokens, 1);
    const r = await complete({ max_tokens: 16, stop_token_ids: [stopId], min_tokens: 3, logit_bias: { [String(stopId)]: 10 } });
    // The bias makes the stop token the pick wherever it is allowed: from the fourth token on.
    assert.equal(r.usage.completion_tokens, 4);
    assert.equal(r.choices[0]!.finish_reason, 'stop');
    const forcedEos = await complete({ max_tokens: 16, min_tokens: 5, logit_bias: { [String(EOS)]: 100 } });
    assert.deepEqual([forcedEos.usage.completion_tokens, forcedEos.choices[0]!.finish_reason], [6, 'stop']);
  });

  it('refuses min_tokens above max_tokens, naming min_tokens', async () => {
    const { status, json } = await rawRequest(t.baseURL, 'POST', '/completions', JSON.stringify({ model: BASE_MODEL, prompt, max_tokens: 4, min_tokens: 5 }));
    assert.equal(status, 400);
    assert.equal((json as { error: { message: string; param: string } }).error.message, '"min_tokens" (5) must not exceed max_tokens (4).');
  });

  it('min_p 1 keeps only the most likely token, so sampling at any seed gives the greedy text', async () => {
    const expected = await decodeOutput(greedy);
    for (const seed of [1, 2, 3]) {
      const r = await complete({ max_tokens: 16, temperature: 1.5, min_p: 1, seed });
      assert.equal(r.choices[0]!.text, expected);
    }
    // Without min_p the same seeds sample other tokens.
    const loose = await Promise.all([1, 2, 3].map((seed) => complete({ max_tokens: 16, temperature: 1.5, seed })));
    assert.equal(loose.filter((r) => r.choices[0]!.text === expected).length, 0);
  });
});
