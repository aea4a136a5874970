import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, streamText } from 'ai';
import { adapterDir, BASE_MODEL, fixtureTokenizer, rawRequest, startServer, type TestServer } from './harness.js';

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

const QUESTION = 'Explain LoRA in one line.';
const SYSTEM = 'You are terse.';

describe('POST /v1/responses: text in, a Response object out, streamed as OpenAI streams it', () => {
  let t: TestServer;
  /** The same conversation through chat completions: what the Response's text must be. */
  const chatText = async (messages: { role: 'system' | 'user'; content: string }[], maxTokens: number, model = BASE_MODEL) => {
    const r = await t.client().chat.completions.create({ model, messages, max_tokens: maxTokens, temperature: 0 });
    return { text: r.choices[0]!.message.content!, promptTokens: r.usage!.prompt_tokens };
  };
  before(async () => {
    t = await startServer({ adapters: [{ name: 'lora', path: adapterDir('lora') }] });
  });
  after(() => t.server.close());

  async function refusal(body: object): Promise<ErrorBody['error']> {
    const { status, json } = await rawRequest(t.baseURL, 'POST', '/responses', JSON.stringify({ model: BASE_MODEL, input: QUESTION, ...body }));
    assert.equal(status, 400, JSON.stringify(json));
    return (json as ErrorBody).error;
  }

  it('answers a string input with one assistant message of output_text, the chat template\'s text, and usage', async () => {
    const r = await t.client().responses.create({ model: BASE_MODEL, input: QUESTION, max_output_tokens: 8, temperature: 0 });
    const chat = await chatText([{ role: 'user', content: QUESTION }], 8);
    assert.match(r.id, /^resp_[0-9a-f]{32}$/);
    assert.equal(r.object, 'response');
    assert.equal(r.model, BASE_MODEL);
    assert.equal(r.output.length, 1);
    const [item] = r.output;
    assert.ok(item?.type === 'message');
    assert.equal(item.role, 'assistant');
    assert.deepEqual(item.content, [{ type: 'output_text', text: chat.text, annotations: [], logprobs: [] }]);
    assert.equal(r.output_text, chat.text);
    assert.deepEqual(r.usage, { input_tokens: chat.promptTokens, input_tokens_details: { cached_tokens: 0 }, output_tokens: 8, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: chat.promptTokens + 8 });
  });

  it('reports a text cut off by max_output_tokens as status incomplete, reason max_output_tokens', async () => {
    const r = await t.client().responses.create({ model: BASE_MODEL, input: QUESTION, max_output_tokens: 3, temperature: 0 });
    assert.equal(r.status, 'incomplete');
    assert.deepEqual(r.incomplete_details, { reason: 'max_output_tokens' });
    assert.equal(r.max_output_tokens, 3);
  });

  it('renders instructions as the system turn, and a message list with text parts and a developer role', async () => {
    const chat = await chatText([{ role: 'system', content: SYSTEM }, { role: 'user', content: QUESTION }], 6);
    const withInstructions = await t.client().responses.create({ model: BASE_MODEL, instructions: SYSTEM, input: QUESTION, max_output_tokens: 6, temperature: 0 });
    const asList = await t.client().responses.create({
      model: BASE_MODEL,
      input: [
        { role: 'developer', content: SYSTEM },
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: QUESTION }] },
      ],
      max_output_tokens: 6,
      temperature: 0,
    });
    for (const r of [withInstructions, asList]) {
      assert.equal(r.output_text, chat.text);
      assert.equal(r.usage!.input_tokens, chat.promptTokens);
    }
    assert.equal(withInstructions.instructions, SYSTEM);
    const tokenizer = await fixtureTokenizer();
    assert.equal(chat.promptTokens, tokenizer.applyChatTemplate([{ role: 'system', content: SYSTEM }, { role: 'user', content: QUESTION }], { addGenerationPrompt: true }).length);
  });

  it('generates through an adapter named as the model', async () => {
    const r = await t.client().responses.create({ model: 'lora', input: QUESTION, max_output_tokens: 8, temperature: 0 });
    assert.equal(r.output_text, (await chatText([{ role: 'user', content: QUESTION }], 8, 'lora')).text);
    assert.equal(r.model, 'lora');
  });

  it('streams created, in_progress, item and part added, text deltas, the done events and the final response, numbered in order', async () => {
    const whole = await t.client().responses.create({ model: BASE_MODEL, input: QUESTION, max_output_tokens: 8, temperature: 0 });
    const events = [];
    for await (const e of await t.client().responses.create({ model: BASE_MODEL, input: QUESTION, max_output_tokens: 8, temperature: 0, stream: true })) events.push(e);
    const types = events.map((e) => e.type);
    const deltas = types.filter((type) => type === 'response.output_text.delta').length;
    assert.ok(deltas > 0);
    assert.deepEqual(types, [
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      ...Array<string>(deltas).fill('response.output_text.delta'),
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.incomplete',
    ]);
    assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
    const text = events.map((e) => (e.type === 'response.output_text.delta' ? e.delta : '')).join('');
    assert.equal(text, whole.output_text);
    const last = events.at(-1)!;
    assert.ok(last.type === 'response.incomplete');
    assert.equal(last.response.output[0]!.type === 'message' && last.response.output[0]!.content[0]!.type === 'output_text' && last.response.output[0]!.content[0]!.text, whole.output_text);
    assert.deepEqual(last.response.usage, whole.usage);
  });

  it('works with the official client\'s responses.stream helper, whose final response carries the text', async () => {
    const whole = await t.client().responses.create({ model: BASE_MODEL, input: QUESTION, max_output_tokens: 8, temperature: 0 });
    const final = await t.client().responses.stream({ model: BASE_MODEL, input: QUESTION, max_output_tokens: 8, temperature: 0 }).finalResponse();
    assert.equal(final.output_text, whole.output_text);
  });

  it('serves the Vercel AI SDK\'s default OpenAI provider: generateText and streamText', async () => {
    const openai = createOpenAI({ baseURL: t.baseURL, apiKey: 'unused' });
    const whole = await t.client().responses.create({ model: BASE_MODEL, input: [{ role: 'user', content: [{ type: 'input_text', text: QUESTION }] }], max_output_tokens: 8, temperature: 0 });
    const generated = await generateText({ model: openai(BASE_MODEL), prompt: QUESTION, maxOutputTokens: 8, temperature: 0, maxRetries: 0 });
    assert.equal(generated.text, whole.output_text);
    assert.equal(generated.usage.outputTokens, 8);
    const streamed = streamText({ model: openai(BASE_MODEL), prompt: QUESTION, maxOutputTokens: 8, temperature: 0, maxRetries: 0 });
    let text = '';
    for await (const piece of streamed.textStream) text += piece;
    assert.equal(text, whole.output_text);
  });

  it('accepts store false and metadata, repeating the metadata back', async () => {
    const r = await t.client().responses.create({ model: BASE_MODEL, input: QUESTION, max_output_tokens: 2, store: false, metadata: { team: 'a' } });
    assert.deepEqual(r.metadata, { team: 'a' });
    assert.equal((r as { store?: boolean }).store, false);
  });

  it('refuses unknown fields and what it does not implement, naming the field', async () => {
    const cases: [object, string, string | null, string][] = [
      [{ foo_bar: 1 }, 'foo_bar', 'unknown_parameter', '"foo_bar" is not a field of POST /v1/responses requests on this server; remove it.'],
      [{ previous_response_id: 'resp_1' }, 'previous_response_id', 'unsupported_parameter', '"previous_response_id" is not supported by this server (it stores no responses); send the whole conversation as "input".'],
      [{ store: true }, 'store', 'unsupported_parameter', '"store" is not supported by this server (it stores no responses); send false or leave it out.'],
      [{ tools: [{ type: 'web_search' }] }, 'tools[0].type', null, 'tools[0].type must be "function", the only tool type this server calls.'],
      [{ max_tool_calls: 2 }, 'max_tool_calls', 'unsupported_parameter', '"max_tool_calls" is not supported by this server (calls are bounded by max_output_tokens and parallel_tool_calls); remove it.'],
      [{ text: { format: { type: 'json_object' } } }, 'text', 'unsupported_parameter', '"text" is not supported by this server beyond {"format": {"type": "text"}} (structured output); remove it.'],
      [{ reasoning: { effort: 'low' } }, 'reasoning', 'unsupported_parameter', '"reasoning" is not supported by this server (its chat templates take no reasoning effort); remove it.'],
    ];
    for (const [extra, param, code, message] of cases) assert.deepEqual(await refusal(extra), { message, type: 'invalid_request_error', param, code });
  });

  it('refuses input items other than messages and function calls, and malformed calls, naming the item', async () => {
    const cases: [unknown, string, string][] = [
      [[{ type: 'item_reference', id: 'msg_1' }], 'input[0]', 'input[0] refers to a stored item, and this server stores none; send the item itself (with the AI SDK, providerOptions.openai.store: false).'],
      [[{ type: 'web_search_call', id: 'ws_1', status: 'completed' }], 'input[0].type', 'input[0] is a "web_search_call" item; this server\'s /v1/responses takes message, function_call and function_call_output items.'],
      [[{ type: 'function_call', call_id: 'c', name: 'f', arguments: 'x=1' }], 'input[0].arguments', 'input[0].arguments must be a JSON object as text, as the call returned it.'],
      [[{ type: 'function_call_output', output: '1' }], 'input[0].call_id', 'input[0].call_id must be the call_id of the call this output answers.'],
      [[{ role: 'user', content: [{ type: 'input_image', image_url: 'x' }] }], 'input[0].content[0]', 'input[0].content[0] must be {"type": "input_text", "text": "..."}; this server reads text only.'],
      [[], 'input', '"input" must be a string or a non-empty array of message items.'],
    ];
    for (const [input, param, message] of cases) assert.deepEqual(await refusal({ input }), { message, type: 'invalid_request_error', param, code: null });
  });
});
