/**
 * tool_choice "auto" end to end through the Vercel AI SDK and LangChain JS, with no grammar holding the output: a
 * LoRA trained here to answer the clients' own request with a Hermes tool call is served over a real port, and each
 * client receives the model's free-running output parsed into its tool-call objects. The requests are first sent to
 * a capturing socket, so the adapter learns on exactly the prompt the server renders for them (parseChatRequest +
 * chatPrompt, Qwen3's template); the base model, asked the same, answers in text (nothing forces the call).
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { ChatOpenAI } from '@langchain/openai';
import { generateText, jsonSchema, tool } from 'ai';
import { AutoModelForCausalLM, AutoTokenizer } from '../../src/index.js';
import { AdamW } from '../../src/optim/index.js';
import { getPeftModel } from '../../src/peft/index.js';
import { chatPrompt } from '../../src/serve/chat-prompt.js';
import { parseChatRequest } from '../../src/serve/chat-request.js';
import { scopeAsync } from '../../src/tensor/scope.js';
import { BASE_MODEL, startServer, type TestServer } from './harness.js';
import { modelWithTemplate, qwen3Template, TIME, WEATHER } from './template-model.js';

const ADAPTER = 'caller';
const QUESTION = 'Weather in Paris?';
const CALL = { name: 'get_weather', arguments: { city: 'Paris', unit: 'c' } };
/** The call as Qwen3's template writes one (Hermes). */
const ANSWER = `<tool_call>\n${JSON.stringify(CALL)}\n</tool_call>`;

const sdkTools = {
  get_weather: tool({ description: 'The weather in a city.', inputSchema: jsonSchema<Record<string, unknown>>(WEATHER) }),
  get_time: tool({ description: 'The time in a zone.', inputSchema: jsonSchema<Record<string, unknown>>(TIME) }),
};
const lcTools = [
  { type: 'function' as const, function: { name: 'get_weather', description: 'The weather in a city.', parameters: WEATHER } },
  { type: 'function' as const, function: { name: 'get_time', description: 'The time in a zone.', parameters: TIME } },
];

async function askSdk(baseURL: string, model: string) {
  const provider = createOpenAICompatible({ name: 'loraforge', baseURL });
  return generateText({ model: provider(model), tools: sdkTools, toolChoice: 'auto', prompt: QUESTION, temperature: 0, maxOutputTokens: 80, maxRetries: 0 });
}

async function askLangChain(baseURL: string, model: string) {
  const chat = new ChatOpenAI({ model, apiKey: 'unused', configuration: { baseURL }, temperature: 0, maxTokens: 80, maxRetries: 0 });
  return chat.bindTools(lcTools, { tool_choice: 'auto' }).invoke(QUESTION);
}

/** The JSON bodies the two clients send for their requests, caught on a socket that answers 400. */
async function capturedBodies(): Promise<unknown[]> {
  const bodies: unknown[] = [];
  const read = async (req: IncomingMessage) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  };
  const server = createServer((req, res) => {
    void read(req).then((body) => {
      bodies.push(body);
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'captured', type: 'invalid_request_error' } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  await assert.rejects(askSdk(baseURL, ADAPTER));
  await assert.rejects(askLangChain(baseURL, ADAPTER));
  server.close();
  return bodies;
}

/** Trains a LoRA on (prompt, ANSWER + eos) for each prompt until greedy decoding writes ANSWER; returns its folder. */
async function trainCaller(modelDir: string, bodies: readonly unknown[]): Promise<string> {
  const model = await AutoModelForCausalLM.fromPretrained(modelDir, { dtype: 'float32' });
  const tokenizer = await AutoTokenizer.fromPretrained(modelDir);
  const answer = [...tokenizer.encode(ANSWER, { addSpecialTokens: false }), model.config.eosTokenIds[0]!];
  const prompts = bodies.map((body) => {
    const req = parseChatRequest(body, model.config.vocabSize);
    return chatPrompt(tokenizer, req.messages, req.tools).ids;
  });
  const peft = getPeftModel(model, { r: 16, loraAlpha: 32, targetModules: 'all-linear', seed: 3 });
  peft.train();
  const optimizer = new AdamW(peft.trainableParameters(), { lr: 1e-2, weightDecay: 0 });
  const learned = async () => {
    for (const ids of prompts) {
      const [out] = await peft.generate([ids], { maxNewTokens: answer.length, doSample: false });
      if (JSON.stringify(out!.slice(ids.length)) !== JSON.stringify(answer)) return false;
    }
    return true;
  };
  let steps = 0;
  for (; steps < 400 && !(steps % 25 === 0 && steps > 0 && (await learned())); steps++) {
    const ids = prompts[steps % prompts.length]!;
    await scopeAsync(async () => {
      const row = [...ids, ...answer];
      const labels = row.map((t, i) => (i < ids.length ? -100 : t));
      await peft.runLoss({ inputIds: [row], labels: [labels] }).backward();
      optimizer.step();
      optimizer.zeroGrad();
    });
  }
  assert.ok(await learned(), `the adapter writes the call greedily after ${steps} steps`);
  const out = await mkdtemp(join(tmpdir(), 'loraforge-caller-'));
  await peft.savePretrained(out);
  return out;
}

describe('tool_choice "auto": a model that calls a tool on its own, through the AI SDK and LangChain JS', () => {
  let t: TestServer;
  let folders: string[] = [];
  before(async () => {
    const modelDir = await modelWithTemplate(await qwen3Template());
    const adapterDir = await trainCaller(modelDir, await capturedBodies());
    folders = [modelDir, adapterDir];
    t = await startServer({ modelDir, modelName: BASE_MODEL, adapters: [{ name: ADAPTER, path: adapterDir }] });
  });
  after(async () => {
    await t?.server.close();
    for (const f of folders) await rm(f, { recursive: true, force: true });
  });

  it('AI SDK (@ai-sdk/openai-compatible) receives the parsed call, finish reason tool-calls; the base answers in text', async () => {
    const r = await askSdk(t.baseURL, ADAPTER);
    assert.equal(r.finishReason, 'tool-calls');
    assert.deepEqual(r.toolCalls.map((c) => [c.toolName, c.input]), [[CALL.name, CALL.arguments]]);
    const base = await askSdk(t.baseURL, BASE_MODEL);
    assert.deepEqual(base.toolCalls, []);
    assert.notEqual(base.finishReason, 'tool-calls');
  });

  it('LangChain ChatOpenAI bindTools (tool_choice "auto") receives the parsed call', async () => {
    const m = await askLangChain(t.baseURL, ADAPTER);
    assert.deepEqual((m.tool_calls ?? []).map((c) => [c.name, c.args]), [[CALL.name, CALL.arguments]]);
    assert.deepEqual((await askLangChain(t.baseURL, BASE_MODEL)).tool_calls ?? [], []);
  });
});
