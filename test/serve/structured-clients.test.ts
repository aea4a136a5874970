import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { ChatOpenAI } from '@langchain/openai';
import { generateObject, generateText, jsonSchema, Output } from 'ai';
import { BASE_MODEL, startServer, type TestServer } from './harness.js';
import { ACCEPTANCE_SCHEMA, schemaErrors } from './structured-schema.js';

type Pet = Record<string, unknown>;

describe('structured outputs through the Vercel AI SDK and LangChain JS', () => {
  let t: TestServer;
  before(async () => {
    t = await startServer();
  });
  after(() => t.server.close());
  const provider = () => createOpenAICompatible({ name: 'loraforge', baseURL: t.baseURL, supportsStructuredOutputs: true });

  it('AI SDK generateObject over @ai-sdk/openai-compatible returns an object that validates against the schema', async () => {
    for (const seed of [0, 1, 2]) {
      const { object, finishReason } = await generateObject({ model: provider()(BASE_MODEL), schema: jsonSchema<Pet>(ACCEPTANCE_SCHEMA), prompt: 'A pet?', temperature: 1, seed, maxOutputTokens: 220, maxRetries: 0 });
      assert.equal(finishReason, 'stop');
      assert.deepEqual(schemaErrors(ACCEPTANCE_SCHEMA, JSON.stringify(object)), []);
    }
  });

  it('AI SDK generateText with Output.object returns the same object as generateObject for the same seed', async () => {
    const model = provider()(BASE_MODEL);
    const schema = jsonSchema<Pet>(ACCEPTANCE_SCHEMA);
    const { output } = await generateText({ model, output: Output.object({ schema }), prompt: 'A pet?', temperature: 1, seed: 5, maxOutputTokens: 220, maxRetries: 0 });
    const { object } = await generateObject({ model, schema, prompt: 'A pet?', temperature: 1, seed: 5, maxOutputTokens: 220, maxRetries: 0 });
    assert.deepEqual(output, object);
    assert.deepEqual(schemaErrors(ACCEPTANCE_SCHEMA, JSON.stringify(output)), []);
  });

  it('LangChain ChatOpenAI.withStructuredOutput(schema, { method: "jsonSchema" }) returns an object that validates', async () => {
    for (const seed of [0, 1, 2]) {
      const chat = new ChatOpenAI({ model: BASE_MODEL, apiKey: 'unused', configuration: { baseURL: t.baseURL }, temperature: 1, maxTokens: 220, maxRetries: 0, modelKwargs: { seed } });
      const pet = await chat.withStructuredOutput<Pet>(ACCEPTANCE_SCHEMA, { method: 'jsonSchema', name: 'pet' }).invoke('A pet?');
      assert.deepEqual(schemaErrors(ACCEPTANCE_SCHEMA, JSON.stringify(pet)), []);
    }
  });
});
