import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { ChatOpenAI } from '@langchain/openai';
import { generateText, jsonSchema, tool, type LanguageModel } from 'ai';
import { BASE_MODEL, type TestServer } from './harness.js';
import { schemaErrors } from './structured-schema.js';
import { qwen3Template, SCHEMAS, serveWithTemplate, TIME, WEATHER } from './template-model.js';


describe('forced tool calls through the Vercel AI SDK and LangChain JS (Qwen3\'s template, Hermes calls)', () => {
  let t: TestServer;
  let close: () => Promise<void>;
  before(async () => {
    ({ t, close } = await serveWithTemplate(await qwen3Template()));
  });
  after(() => close());

  const tools = {
    get_weather: tool({ description: 'The weather in a city.', inputSchema: jsonSchema<Record<string, unknown>>(WEATHER) }),
    get_time: tool({ description: 'The time in a zone.', inputSchema: jsonSchema<Record<string, unknown>>(TIME) }),
  };
  const models = (): [string, LanguageModel][] => [
    ['@ai-sdk/openai-compatible', createOpenAICompatible({ name: 'loraforge', baseURL: t.baseURL })(BASE_MODEL)],
    ['@ai-sdk/openai chat', createOpenAI({ baseURL: t.baseURL, apiKey: 'unused' }).chat(BASE_MODEL)],
  ];

  it('AI SDK generateText with toolChoice "required" and a named tool returns calls whose input validates', async () => {
    for (const [provider, model] of models()) {
      for (const seed of [0, 1, 2]) {
        const required = await generateText({ model, tools, toolChoice: 'required', prompt: 'Weather in Paris?', temperature: 1, seed, maxOutputTokens: 300, maxRetries: 0 });
        assert.equal(required.finishReason, 'tool-calls', `${provider} seed ${seed}`);
        assert.ok(required.toolCalls.length >= 1);
        for (const call of required.toolCalls) assert.deepEqual(schemaErrors(SCHEMAS[call.toolName]!, JSON.stringify(call.input)), [], `${provider} seed ${seed}`);
        const named = await generateText({ model, tools, toolChoice: { type: 'tool', toolName: 'get_time' }, prompt: 'Time in Paris?', temperature: 1, seed, maxOutputTokens: 300, maxRetries: 0 });
        assert.deepEqual(named.toolCalls.map((c) => c.toolName), ['get_time'], `${provider} seed ${seed}`);
        assert.deepEqual(schemaErrors(TIME, JSON.stringify(named.toolCalls[0]!.input)), []);
      }
    }
  });

  it('LangChain bindTools with tool_choice "any" and a named tool, and withStructuredOutput over function calling', async () => {
    const lcTools = Object.entries(SCHEMAS).map(([name, parameters]) => ({ type: 'function' as const, function: { name, description: name, parameters } }));
    for (const seed of [0, 1, 2]) {
      const chat = new ChatOpenAI({ model: BASE_MODEL, apiKey: 'unused', configuration: { baseURL: t.baseURL }, temperature: 1, maxTokens: 300, maxRetries: 0, modelKwargs: { seed } });
      const any = await chat.bindTools(lcTools, { tool_choice: 'any' }).invoke('Weather in Paris?');
      assert.ok((any.tool_calls ?? []).length >= 1, `seed ${seed}`);
      for (const call of any.tool_calls ?? []) assert.deepEqual(schemaErrors(SCHEMAS[call.name]!, JSON.stringify(call.args)), [], `seed ${seed}`);
      const named = await chat.bindTools(lcTools, { tool_choice: 'get_weather' }).invoke('Weather in Paris?');
      assert.deepEqual((named.tool_calls ?? []).map((c) => c.name), ['get_weather'], `seed ${seed}`);
      const weather = await chat.withStructuredOutput<Record<string, unknown>>(WEATHER, { method: 'functionCalling', name: 'get_weather' }).invoke('Weather in Paris?');
      assert.deepEqual(schemaErrors(WEATHER, JSON.stringify(weather)), [], `seed ${seed}`);
    }
  });
});
