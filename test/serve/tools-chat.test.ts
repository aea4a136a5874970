import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ChatOpenAI } from '@langchain/openai';
import { AutoTokenizer, type PreTrainedTokenizer } from '../../src/tokenizer/index.js';
import { fixturePath } from '../helpers/fixtures.js';
import { BASE_MODEL, MODEL_DIR, rawRequest, startServer, type TestServer } from './harness.js';
import { modelWithTemplate } from './template-model.js';

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

const TOOLS = [
  {
    type: 'function' as const,
    function: {
      name: 'get_weather',
      description: 'The weather in a city.',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  },
];
const QUESTION = [{ role: 'user' as const, content: 'How warm is it in Zürich?' }];
const CALL = { id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{"city": "Zürich"}' } };
const TOOL_RESULT = { role: 'tool' as const, tool_call_id: 'call_1', content: '21 °C' };
/** A finished round: the assistant called get_weather, the tool answered. */
const HISTORY = [...QUESTION, { role: 'assistant' as const, content: null, tool_calls: [CALL] }, TOOL_RESULT];

/** Renders tools as JSON in the system turn but names no tool-call syntax. */
const UNPARSED_TOOLS_TEMPLATE = "{% if tools %}<|im_start|>system\n{{ tools | tojson }}<|im_end|>\n{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

describe('chat tools over a port: rendered through the chat template, history accepted, refusals named', () => {
  let dir: string;
  let unparsedDir: string;
  let t: TestServer;
  let plain: TestServer;
  let unparsed: TestServer;
  let tokenizer: PreTrainedTokenizer;
  before(async () => {
    dir = await modelWithTemplate(await readFile(fixturePath('templates', 'Qwen-Qwen3-0.6B.jinja'), 'utf8'));
    unparsedDir = await modelWithTemplate(UNPARSED_TOOLS_TEMPLATE);
    t = await startServer({ modelDir: dir, modelName: BASE_MODEL });
    plain = await startServer();
    unparsed = await startServer({ modelDir: unparsedDir, modelName: BASE_MODEL });
    tokenizer = await AutoTokenizer.fromPretrained(dir);
  });
  after(async () => {
    await t.server.close();
    await plain.server.close();
    await unparsed.server.close();
    await rm(dir, { recursive: true, force: true });
    await rm(unparsedDir, { recursive: true, force: true });
  });

  async function refusal(server: TestServer, body: object): Promise<ErrorBody['error']> {
    const { status, json } = await rawRequest(server.baseURL, 'POST', '/chat/completions', JSON.stringify({ model: BASE_MODEL, max_tokens: 4, ...body }));
    assert.equal(status, 400, JSON.stringify(json));
    return (json as ErrorBody).error;
  }

  it('renders the tools into the prompt as the template\'s `tools` variable', async () => {
    const r = await t.client().chat.completions.create({ model: BASE_MODEL, messages: QUESTION, tools: TOOLS, max_tokens: 4, temperature: 0 });
    const text = tokenizer.applyChatTemplate(QUESTION, { addGenerationPrompt: true, tools: TOOLS, tokenize: false });
    assert.ok(text.includes('<tools>\n{"type": "function", "function": {"name": "get_weather"'), text);
    assert.equal(r.usage!.prompt_tokens, tokenizer.encode(text, { addSpecialTokens: false }).length);
    assert.ok(r.usage!.prompt_tokens > tokenizer.applyChatTemplate(QUESTION, { addGenerationPrompt: true }).length);
  });

  it('renders a tool-call history: the assistant\'s call with its arguments as an object, the tool\'s result', async () => {
    const r = await t.client().chat.completions.create({ model: BASE_MODEL, messages: HISTORY, tools: TOOLS, max_tokens: 4, temperature: 0 });
    const asTemplateTakesIt = [...QUESTION, { role: 'assistant', content: '', tool_calls: [{ ...CALL, function: { name: 'get_weather', arguments: { city: 'Zürich' } } }] }, TOOL_RESULT];
    const text = tokenizer.applyChatTemplate(asTemplateTakesIt, { addGenerationPrompt: true, tools: TOOLS, tokenize: false });
    assert.ok(text.includes('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich"}}\n</tool_call>'), text);
    assert.ok(text.includes('<|im_start|>user\n<tool_response>\n21 °C\n</tool_response><|im_end|>'), text);
    assert.equal(r.usage!.prompt_tokens, tokenizer.encode(text, { addSpecialTokens: false }).length);
  });

  it('answers text that holds no call as content, with no tool_calls and the same text streamed', async () => {
    const body = { model: BASE_MODEL, messages: QUESTION, tools: TOOLS, max_tokens: 12, temperature: 0 };
    const whole = await t.client().chat.completions.create(body);
    let streamed = '';
    for await (const chunk of await t.client().chat.completions.create({ ...body, stream: true })) {
      assert.equal(chunk.choices[0]?.delta.tool_calls, undefined);
      streamed += chunk.choices[0]?.delta.content ?? '';
    }
    assert.equal(whole.choices[0]!.message.tool_calls, undefined);
    assert.equal(whole.choices[0]!.finish_reason, 'length');
    assert.equal(streamed, whole.choices[0]!.message.content);
  });

  it('keeps special tokens in the text under tools (the parser must see Llama\'s and Mistral\'s), unless skip_special_tokens says otherwise', async () => {
    // logit_bias makes every token <|im_start|> (id 1), a special token of the fixture tokenizer.
    const body = { model: BASE_MODEL, messages: QUESTION, max_tokens: 3, temperature: 0, logit_bias: { '1': 100 } };
    const content = async (extra: object) => ((await rawRequest(t.baseURL, 'POST', '/chat/completions', JSON.stringify({ ...body, ...extra }))).json as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
    assert.equal(await content({ tools: TOOLS }), '<|im_start|><|im_start|><|im_start|>');
    assert.equal(await content({ tools: TOOLS, skip_special_tokens: true }), '');
    assert.equal(await content({}), '');
  });

  it('renders the tools under tool_choice "none" and parallel_tool_calls false the same as under "auto"', async () => {
    const auto = await t.client().chat.completions.create({ model: BASE_MODEL, messages: QUESTION, tools: TOOLS, max_tokens: 4, temperature: 0 });
    const none = await t.client().chat.completions.create({ model: BASE_MODEL, messages: QUESTION, tools: TOOLS, tool_choice: 'none', max_tokens: 4, temperature: 0 });
    const single = await t.client().chat.completions.create({ model: BASE_MODEL, messages: QUESTION, tools: TOOLS, parallel_tool_calls: false, max_tokens: 4, temperature: 0 });
    assert.equal(none.usage!.prompt_tokens, auto.usage!.prompt_tokens);
    assert.equal(single.usage!.prompt_tokens, auto.usage!.prompt_tokens);
  });

  it('serves LangChain\'s ChatOpenAI with bound tools: the tools reach the prompt, text comes back as content', async () => {
    const model = new ChatOpenAI({ model: BASE_MODEL, apiKey: 'unused', configuration: { baseURL: t.baseURL }, temperature: 0, maxTokens: 4, maxRetries: 0 });
    const reply = await model.bindTools(TOOLS).invoke(QUESTION[0]!.content);
    const direct = await t.client().chat.completions.create({ model: BASE_MODEL, messages: QUESTION, tools: TOOLS, max_tokens: 4, temperature: 0 });
    assert.equal(reply.content, direct.choices[0]!.message.content);
    assert.deepEqual(reply.tool_calls, []);
    assert.equal(reply.usage_metadata?.input_tokens, direct.usage!.prompt_tokens);
  });

  it('serves LangChain\'s ChatOpenAI without tools: invoke and stream give the same text', async () => {
    const model = new ChatOpenAI({ model: BASE_MODEL, apiKey: 'unused', configuration: { baseURL: plain.baseURL }, temperature: 0, maxTokens: 8, maxRetries: 0 });
    const reply = await model.invoke(QUESTION[0]!.content);
    let streamed = '';
    for await (const chunk of await model.stream(QUESTION[0]!.content)) streamed += String(chunk.content);
    assert.equal(typeof reply.content, 'string');
    assert.equal(streamed, reply.content);
    assert.equal(reply.content, (await plain.client().chat.completions.create({ model: BASE_MODEL, messages: QUESTION, max_tokens: 8, temperature: 0 })).choices[0]!.message.content);
  });

  it('refuses tools where the chat template does not render them', async () => {
    assert.deepEqual(await refusal(plain, { messages: QUESTION, tools: TOOLS }), {
      message: `The chat template in ${join(MODEL_DIR, 'chat_template.jinja')} does not render "tools", so the model would never see them; serve a model whose template takes tools, or leave "tools" out.`,
      type: 'invalid_request_error',
      param: 'tools',
      code: null,
    });
  });

  it('refuses tool_choice "auto" where the template names no syntax the server parses, and serves "none" there', async () => {
    assert.deepEqual(await refusal(unparsed, { messages: QUESTION, tools: TOOLS }), {
      message: `The chat template in ${join(unparsedDir, 'chat_template.jinja')} writes tool calls in none of the syntaxes this server parses (hermes (<tool_call>), phi4_mini (<|tool_call|>), llama3_json (<|python_tag|>), mistral ([TOOL_CALLS])); send "tool_choice": "none" or leave "tools" out.`,
      type: 'invalid_request_error',
      param: 'tools',
      code: null,
    });
    const none = await unparsed.client().chat.completions.create({ model: BASE_MODEL, messages: QUESTION, tools: TOOLS, tool_choice: 'none', max_tokens: 2, temperature: 0 });
    assert.equal(none.choices[0]!.message.tool_calls, undefined);
  });

  it('refuses malformed tools, each naming its field', async () => {
    const fn = TOOLS[0]!.function;
    const cases: [object, string, string][] = [
      [[{ type: 'function', function: { ...fn, strict: 'yes' } }], 'tools[0].function.strict', 'tools[0].function.strict must be true or false.'],
      [[{ type: 'function', function: { ...fn, returns: {} } }], 'tools[0].function.returns', 'tools[0].function.returns is not a field of a function; remove it.'],
      [[{ type: 'web_search' }], 'tools[0].type', 'tools[0].type must be "function", the only tool type this server calls.'],
      [[{ type: 'function', function: { name: 'get weather' } }], 'tools[0].function.name', 'tools[0].function.name must be 1 to 64 letters, digits, underscores or dashes.'],
      [[TOOLS[0], TOOLS[0]], 'tools[1].function.name', 'tools[1].function.name "get_weather" is given twice; give each function once.'],
    ];
    for (const [tools, param, message] of cases) assert.deepEqual(await refusal(t, { messages: QUESTION, tools }), { message, type: 'invalid_request_error', param, code: param.endsWith('returns') ? 'unknown_parameter' : null });
  });

  it('refuses a history whose tool fields are malformed, naming the message field', async () => {
    const cases: [object[], string, string][] = [
      [[...QUESTION, { role: 'assistant', content: null, tool_calls: [{ ...CALL, function: { name: 'get_weather', arguments: 'city=Zürich' } }] }], 'messages[1].tool_calls[0].function.arguments', 'messages[1].tool_calls[0].function.arguments must be a JSON object as text, as the call returned it.'],
      [[...QUESTION, { role: 'tool', content: '21 °C' }], 'messages[1].tool_call_id', 'messages[1].tool_call_id must be the id of the call this message answers.'],
    ];
    for (const [messages, param, message] of cases) assert.deepEqual(await refusal(t, { messages, tools: TOOLS }), { message, type: 'invalid_request_error', param, code: null });
  });

  it('refuses the deprecated functions and function_call fields, pointing to tools', async () => {
    assert.equal((await refusal(t, { messages: QUESTION, functions: [fnOnly()] })).message, '"functions" is the deprecated form of "tools", which this server does not take; send "tools" instead.');
    assert.equal((await refusal(t, { messages: QUESTION, function_call: 'auto' })).message, '"function_call" is the deprecated form of "tool_choice", which this server does not take; send "tool_choice" instead.');
  });
});

function fnOnly() {
  return TOOLS[0]!.function;
}
