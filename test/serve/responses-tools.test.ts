import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, jsonSchema, stepCountIs, streamText, tool } from 'ai';
import type OpenAI from 'openai';
import { BASE_MODEL, rawRequest, type TestServer } from './harness.js';
import { schemaErrors } from './structured-schema.js';
import { qwen3Template, SCHEMAS, serveWithTemplate, TIME, WEATHER } from './template-model.js';

/** The Responses API's function tools: the function's fields beside its type. */
const TOOLS = [
  { type: 'function' as const, name: 'get_weather', description: 'The weather in a city.', parameters: WEATHER, strict: null },
  { type: 'function' as const, name: 'get_time', description: 'The time in a zone.', parameters: TIME, strict: null },
];
/** The same tools as chat completions spell them. */
const CHAT_TOOLS = TOOLS.map(({ type, strict: _, ...fn }) => ({ type, function: fn }));
const QUESTION = 'How warm is it in Paris?';

type OpenAIResponses = OpenAI['responses'];

interface FunctionCallItem {
  type: 'function_call';
  id: string;
  call_id: string;
  name: string;
  arguments: string;
  status: string;
}

function callErrors(items: readonly { type: string }[], names: readonly string[]): string[] {
  return items
    .filter((i): i is FunctionCallItem => i.type === 'function_call')
    .flatMap((c) => (names.includes(c.name) ? schemaErrors(SCHEMAS[c.name]!, c.arguments).map((e) => `${c.name}(${c.arguments}): ${e}`) : [`called ${c.name}`]));
}

describe('function tools on /v1/responses over a port (Qwen3\'s template, Hermes calls)', () => {
  let t: TestServer;
  let close: () => Promise<void>;
  before(async () => {
    ({ t, close } = await serveWithTemplate(await qwen3Template()));
  });
  after(() => close());

  // The Responses API has no seed: sampled runs differ, and parallel_tool_calls false bounds each to one call.
  const create = (extra: object = {}) =>
    t.client().responses.create({ model: BASE_MODEL, input: QUESTION, tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false, temperature: 1, max_output_tokens: 300, ...extra });

  it('"required" returns function_call items whose arguments validate, and no message, on every sampled run', async () => {
    for (const seed of [0, 1, 2, 3, 4]) {
      const r = await create();
      assert.equal(r.status, 'completed');
      assert.ok(r.output.length >= 1);
      assert.deepEqual(r.output.map((i) => i.type), r.output.map(() => 'function_call'), `seed ${seed}`);
      assert.deepEqual(callErrors(r.output, ['get_weather', 'get_time']), [], `seed ${seed}`);
      for (const item of r.output as FunctionCallItem[]) {
        assert.match(item.id, /^fc_[0-9a-f]{32}$/);
        assert.match(item.call_id, /^call_[a-zA-Z0-9]{24}$/);
        assert.equal(item.status, 'completed');
      }
      assert.equal(r.output.length, 1, `run ${seed}`);
      assert.equal(r.tool_choice, 'required');
      assert.equal(r.parallel_tool_calls, false);
      assert.equal(r.tools.length, 2);
    }
  });

  it('a named function gives one call of it, on every sampled run', async () => {
    for (const run of [0, 1, 2]) {
      const named = await create({ tool_choice: { type: 'function', name: 'get_time' }, parallel_tool_calls: true });
      assert.deepEqual(named.output.map((i) => (i as FunctionCallItem).name), ['get_time'], `run ${run}`);
      assert.deepEqual(callErrors(named.output, ['get_time']), []);
    }
  });

  it('streams each call as output_item.added, function_call_arguments.delta and .done, output_item.done, adding up to the whole response', async () => {
    for (const tool_choice of ['required', { type: 'function', name: 'get_weather' }]) {
      const body = { model: BASE_MODEL, input: QUESTION, tools: TOOLS, tool_choice, temperature: 0, max_output_tokens: 300 };
      const whole = await t.client().responses.create(body as Parameters<OpenAIResponses['create']>[0] & { stream?: false });
      const events: { type: string; sequence_number: number; output_index?: number; item?: FunctionCallItem; delta?: string; arguments?: string }[] = [];
      const stream = await t.client().responses.create({ ...body, stream: true } as Parameters<OpenAIResponses['create']>[0] & { stream: true });
      for await (const e of stream) events.push(e as (typeof events)[number]);
      assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
      const types = events.map((e) => e.type);
      assert.deepEqual([types[0], types[1], types.at(-1)], ['response.created', 'response.in_progress', 'response.completed']);
      assert.equal(types.includes('response.output_text.delta'), false);
      const done = events.filter((e) => e.type === 'response.output_item.done').map((e) => e.item!);
      const strip = (items: readonly { type: string }[]) => (items as FunctionCallItem[]).map(({ name, arguments: args }) => ({ name, arguments: args }));
      assert.deepEqual(strip(done), strip(whole.output));
      assert.ok(done.length >= 1);
      for (const [i, item] of done.entries()) {
        const own = events.filter((e) => e.output_index === i).map((e) => e.type);
        assert.deepEqual(own, ['response.output_item.added', 'response.function_call_arguments.delta', 'response.function_call_arguments.done', 'response.output_item.done']);
        assert.equal(events.find((e) => e.type === 'response.function_call_arguments.delta' && e.output_index === i)!.delta, item.arguments);
      }
      const final = (events.at(-1) as unknown as { response: { output: FunctionCallItem[] } }).response.output;
      assert.deepEqual(final, done);
    }
  });

  it('"auto" renders the same prompt as chat with the same tools, and text with no call comes back as the message', async () => {
    const chat = await t.client().chat.completions.create({ model: BASE_MODEL, messages: [{ role: 'user', content: QUESTION }], tools: CHAT_TOOLS, max_tokens: 8, temperature: 0 });
    const r = await t.client().responses.create({ model: BASE_MODEL, input: QUESTION, tools: TOOLS, max_output_tokens: 8, temperature: 0 });
    assert.equal(r.usage!.input_tokens, chat.usage!.prompt_tokens);
    assert.equal(chat.choices[0]!.message.tool_calls, undefined);
    assert.equal(r.output_text, chat.choices[0]!.message.content);
    const events: { type: string; delta?: string }[] = [];
    for await (const e of await t.client().responses.create({ model: BASE_MODEL, input: QUESTION, tools: TOOLS, max_output_tokens: 8, temperature: 0, stream: true })) events.push(e);
    assert.equal(events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join(''), r.output_text);
    assert.deepEqual(events.filter((e) => e.type.startsWith('response.output_item.')).map((e) => e.type), ['response.output_item.added', 'response.output_item.done']);
  });

  it('takes function_call and function_call_output items as the history chat sends as tool_calls and tool messages', async () => {
    const args = '{"city": "Paris", "unit": "c"}';
    const chat = await t.client().chat.completions.create({
      model: BASE_MODEL,
      tools: CHAT_TOOLS,
      max_tokens: 2,
      temperature: 0,
      messages: [
        { role: 'user', content: QUESTION },
        { role: 'assistant', content: 'Looking.', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: args } }, { id: 'call_2', type: 'function', function: { name: 'get_time', arguments: '{"zone": "CET"}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: '21 C' },
        { role: 'tool', tool_call_id: 'call_2', content: '10:00' },
      ],
    });
    const r = await t.client().responses.create({
      model: BASE_MODEL,
      tools: TOOLS,
      max_output_tokens: 2,
      temperature: 0,
      input: [
        { role: 'user', content: QUESTION },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Looking.', annotations: [] }], id: 'msg_1', status: 'completed' },
        { type: 'function_call', call_id: 'call_1', name: 'get_weather', arguments: args },
        { type: 'function_call', call_id: 'call_2', name: 'get_time', arguments: '{"zone": "CET"}' },
        { type: 'function_call_output', call_id: 'call_1', output: '21 C' },
        { type: 'function_call_output', call_id: 'call_2', output: [{ type: 'input_text', text: '10:00' }] },
      ],
    });
    assert.equal(r.usage!.input_tokens, chat.usage!.prompt_tokens);
    assert.equal(r.output_text, chat.choices[0]!.message.content);
  });

  it('serves the AI SDK\'s default provider with tools: generateText and streamText with toolChoice, and a second step with the results', async () => {
    const openai = createOpenAI({ baseURL: t.baseURL, apiKey: 'unused' });
    const tools = {
      get_weather: tool({ description: 'The weather in a city.', inputSchema: jsonSchema<Record<string, unknown>>(WEATHER) }),
      get_time: tool({ description: 'The time in a zone.', inputSchema: jsonSchema<Record<string, unknown>>(TIME) }),
    };
    const common = { model: openai(BASE_MODEL), tools, prompt: QUESTION, temperature: 0, maxOutputTokens: 300, maxRetries: 0, providerOptions: { openai: { store: false } } };
    const generated = await generateText({ ...common, toolChoice: { type: 'tool', toolName: 'get_weather' } });
    assert.equal(generated.finishReason, 'tool-calls');
    assert.deepEqual(generated.toolCalls.map((c) => c.toolName), ['get_weather']);
    assert.deepEqual(schemaErrors(WEATHER, JSON.stringify(generated.toolCalls[0]!.input)), []);
    const streamed = streamText({ ...common, toolChoice: { type: 'tool', toolName: 'get_weather' } });
    assert.deepEqual((await streamed.toolCalls).map((c) => ({ name: c.toolName, input: c.input })), generated.toolCalls.map((c) => ({ name: c.toolName, input: c.input })));
    assert.equal(await streamed.finishReason, 'tool-calls');
    const executed = {
      get_weather: tool({ ...tools.get_weather, execute: async () => '21 C' }),
      get_time: tool({ ...tools.get_time, execute: async () => '10:00' }),
    };
    const twoSteps = await generateText({ ...common, tools: executed, toolChoice: 'required', stopWhen: stepCountIs(2) });
    assert.equal(twoSteps.steps.length, 2);
    assert.ok(twoSteps.steps[0]!.toolResults.length >= 1);
    for (const call of twoSteps.steps[1]!.toolCalls) assert.deepEqual(schemaErrors(SCHEMAS[call.toolName]!, JSON.stringify(call.input)), []);
  });

  it('refuses tools in the Responses spelling\'s terms: strict under "none", an unknown named function, a malformed tool_choice', async () => {
    const refusal = async (body: object) => {
      const { status, json } = await rawRequest(t.baseURL, 'POST', '/responses', JSON.stringify({ model: BASE_MODEL, input: QUESTION, max_output_tokens: 2, ...body }));
      assert.equal(status, 400, JSON.stringify(json));
      return (json as { error: { message: string; param: string } }).error;
    };
    const strict = await refusal({ tools: [{ ...TOOLS[0], strict: true }], tool_choice: 'none' });
    assert.deepEqual([strict.param, strict.message], ['tools[0].strict', 'tools[0].strict true keeps a call\'s arguments to the schema, and "tool_choice" "none" reads no calls; send "auto", "required" or a named function, or leave strict out.']);
    const unknown = await refusal({ tools: TOOLS, tool_choice: { type: 'function', name: 'get_news' } });
    assert.equal(unknown.message, '"tool_choice" names the function "get_news", which is not among "tools" ("get_weather", "get_time"); name one of them.');
    const shape = await refusal({ tools: TOOLS, tool_choice: { type: 'allowed_tools', mode: 'auto', tools: [] } });
    assert.equal(shape.message, '"tool_choice" must be "none", "auto", "required" or {"type": "function", "name": ...}.');
    const keyword = await refusal({ tools: [{ ...TOOLS[0], parameters: { type: 'object', properties: { n: { type: 'number', multipleOf: 2 } } } }], tool_choice: 'required' });
    assert.deepEqual([keyword.param, keyword.message], [
      'tools[0].parameters',
      '"tools[0].parameters" uses the JSON Schema keyword "multipleOf" at #/properties/n/multipleOf, which this server cannot guarantee: the grammar engine does not enforce it; remove it or list the values with "enum".',
    ]);
    const extra = await refusal({ tools: [{ ...TOOLS[0], returns: {} }] });
    assert.deepEqual([extra.param, extra.message], ['tools[0].returns', 'tools[0].returns is not a field of a function tool; remove it.']);
  });
});
