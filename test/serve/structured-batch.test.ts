import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { adapterDir, BASE_MODEL, inputRow, postOk, startServer, type TestServer } from './harness.js';
import { ACCEPTANCE_SCHEMA, schemaErrors } from './structured-schema.js';

interface Completion {
  choices: { text: string; finish_reason: string }[];
}

describe('structured outputs in mixed batches', () => {
  let t: TestServer;
  const complete = (body: object) => postOk<Completion>(t.baseURL, '/completions', body);
  before(async () => {
    t = await startServer({ adapters: [{ name: 'lora', path: adapterDir('lora') }, { name: 'rslora', path: adapterDir('rslora') }] });
  });
  after(() => t.server.close());

  it('leaves the tokens of free and adapter rows unchanged beside grammar rows, and a grammar row\'s own the same alone', async () => {
    const free = [
      { model: BASE_MODEL, prompt: await inputRow(0, 8), max_tokens: 24, temperature: 0 },
      { model: 'lora', prompt: await inputRow(1, 9), max_tokens: 24, temperature: 1, seed: 11 },
      { model: 'rslora', prompt: await inputRow(2, 5), max_tokens: 24, temperature: 0.8, seed: 5 },
    ];
    const guided = [
      { model: BASE_MODEL, prompt: await inputRow(1, 6), max_tokens: 200, temperature: 1, seed: 4, guided_json: ACCEPTANCE_SCHEMA },
      { model: 'lora', prompt: await inputRow(0, 7), max_tokens: 40, temperature: 1, seed: 9, guided_regex: '[a-z]{3,12}-[0-9]{2}' },
    ];
    const alone: Completion[] = [];
    for (const body of [...free, ...guided]) alone.push(await complete(body));
    const together = await Promise.all([...guided, ...free, ...guided].map((body) => complete(body)));
    assert.deepEqual(together.slice(2, 5).map((c) => c.choices), alone.slice(0, 3).map((c) => c.choices));
    assert.deepEqual([together[0]!.choices, together[1]!.choices], [alone[3]!.choices, alone[4]!.choices]);
    assert.deepEqual([together[5]!.choices, together[6]!.choices], [alone[3]!.choices, alone[4]!.choices]);
    assert.deepEqual(schemaErrors(ACCEPTANCE_SCHEMA, alone[3]!.choices[0]!.text), []);
    assert.match(alone[4]!.choices[0]!.text, /^[a-z]{3,12}-[0-9]{2}$/);
  });

  it('gives each of n grammar choices its own matcher: every choice keeps to the schema', async () => {
    const r = await complete({ model: BASE_MODEL, prompt: await inputRow(2, 6), max_tokens: 200, temperature: 1, seed: 21, n: 4, guided_json: ACCEPTANCE_SCHEMA });
    assert.equal(r.choices.length, 4);
    for (const c of r.choices) assert.deepEqual([c.finish_reason, schemaErrors(ACCEPTANCE_SCHEMA, c.text)], ['stop', []], c.text);
    assert.equal(new Set(r.choices.map((c) => c.text)).size, 4);
  });
});
