import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { ChatOpenAI } from '@langchain/openai';
import { generateText, jsonSchema, tool, type LanguageModel } from 'ai';
import { fixturePath } from '../helpers/fixtures.js';
import { BASE_MODEL, startServer, type TestServer } from './harness.js';
import { schemaErrors } from './structured-schema.js';
import { modelWithTemplate } from './template-model.js';

const WEATHER = {
  type: 'object',
  properties: { city: { type: 'string', maxLength: 10 }, unit: { enum: ['c', 'f'] } },
  required: ['city', 'unit'],
  additionalProperties: false,
} as const;
const TIME = { type: 'object', properties: { zone: { type: 'string', maxLength: 6 } }, required: ['zone'], additionalProperties: false } as const;
const SCHEMAS: Record<string, object> = { get_weather: WEATHER, get_time: TIME };

describe('forced tool calls through the Vercel AI SDK and LangChain JS (Qwen3\'s template, Hermes calls)', () => {
  let dir: string;
  let t: TestServer;
  before(async () => {
    dir = await modelWithTemplate(await readFile(fixturePath('templates', 'Qwen-Qwen3-0.6B.jinja'), 'utf8'));
    t = await startServer({ modelDir: dir, modelName: BASE_MODEL });
  });
  after(async () => {
    await t.server.close();
    await rm(dir, { recursive: true, force: true });
  });

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
