import OpenAI from 'openai';
import { AutoModelForCausalLM } from '../../src/models/auto.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { createServer, type RunningServer, type ServerOptions } from '../../src/serve/index.js';
import { AutoTokenizer, type PreTrainedTokenizer } from '../../src/tokenizer/index.js';
import { prepareTestDevice, TEST_DEVICE } from '../helpers/device.js';
import { fixturePath, readFixtureTensor } from '../helpers/fixtures.js';

export const MODEL_DIR = fixturePath('tiny-llama');
export const BASE_MODEL = 'tiny-llama';
/** Fixture adapter folders by the variant name the reference file uses ("lora" -> tiny-llama-lora). */
export const ADAPTER_VARIANTS = ['lora', 'lora_qv', 'rslora', 'dora'] as const;
export type AdapterVariant = (typeof ADAPTER_VARIANTS)[number];

export function adapterDir(variant: AdapterVariant): string {
  return fixturePath(`tiny-llama-${variant}`);
}

export interface TestServer {
  readonly server: RunningServer;
  readonly baseURL: string;
  /** The official client pointed at this server, retries off so refusals surface at once. */
  client(apiKey?: string): OpenAI;
}

/** The fixture model on the device the suites run on (LORAFORGE_TEST_DEVICE). */
export async function loadFixtureModel(): Promise<CausalLM> {
  await prepareTestDevice();
  return AutoModelForCausalLM.fromPretrained(MODEL_DIR, { device: TEST_DEVICE });
}

/** Starts a server on a free loopback port, on the test device; the suite closes it in an after() hook. */
export async function startServer(options: Partial<ServerOptions> = {}): Promise<TestServer> {
  await prepareTestDevice();
  const server = await createServer({ modelDir: MODEL_DIR, port: 0, device: TEST_DEVICE, ...options });
  const baseURL = `http://127.0.0.1:${server.port}/v1`;
  return {
    server,
    baseURL,
    client: (apiKey = options.apiKey ?? 'unused') => new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30_000 }),
  };
}

/** The reference prompt: the first 8 ids of row 0 of input_ids. */
export async function fixturePrompt(): Promise<number[]> {
  const ids = await readFixtureTensor('tiny-llama-ref.safetensors', 'input_ids');
  return Array.from(ids.data as ArrayLike<number | bigint>, Number).slice(0, 8);
}

/** Row `row` of input_ids cut to `length` tokens: further prompts of various lengths. */
export async function inputRow(row: number, length: number): Promise<number[]> {
  const ids = await readFixtureTensor('tiny-llama-ref.safetensors', 'input_ids');
  const [, T] = ids.shape as [number, number];
  return Array.from(ids.data as ArrayLike<number | bigint>, Number).slice(row * T, row * T + length);
}

/** transformers' 16 greedy tokens: `generate_base` or `<variant>.generate`. */
export async function fixtureGeneration(variant: AdapterVariant | 'base'): Promise<number[]> {
  const t = await readFixtureTensor('tiny-llama-ref.safetensors', variant === 'base' ? 'generate_base' : `${variant}.generate`);
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}

let tokenizer: PreTrainedTokenizer | null = null;
export async function fixtureTokenizer(): Promise<PreTrainedTokenizer> {
  tokenizer ??= await AutoTokenizer.fromPretrained(MODEL_DIR);
  return tokenizer;
}

/** What the server sends for generated ids: their text without special tokens. */
export async function decodeOutput(ids: readonly number[]): Promise<string> {
  return (await fixtureTokenizer()).decode(ids, { skipSpecialTokens: true });
}

/** A raw HTTP call, for what the official client would not send (malformed JSON, oversized bodies). */
export async function rawRequest(baseURL: string, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; json: unknown }> {
  const contentType: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
  const res = await fetch(`${baseURL}${path}`, { method, body, headers: { ...contentType, ...headers } });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

/** POSTs a JSON body that must succeed (fields the official client's types lack: vLLM's); returns the parsed body. */
export async function postOk<T>(baseURL: string, path: string, body: object): Promise<T> {
  const { status, json } = await rawRequest(baseURL, 'POST', path, JSON.stringify(body));
  if (status !== 200) throw new Error(`${path} answered ${status}: ${JSON.stringify(json)}`);
  return json as T;
}

/** log_softmax, in float64, of the model's next-token logits after `ids` (the library's own forward, no cache). */
export async function referenceLogprobs(model: CausalLM, ids: readonly number[]): Promise<Float64Array> {
  const logits = await model.run({ inputIds: [[...ids]], lastTokenOnly: true }).logits.data();
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let total = 0;
  for (const v of logits) total += Math.exp(v - max);
  const lse = max + Math.log(total);
  return Float64Array.from(logits, (v) => v - lse);
}

/** Token ids sorted from most to least likely. */
export function ranked(logprobs: Float64Array): number[] {
  return Array.from(logprobs.keys()).sort((a, b) => logprobs[b]! - logprobs[a]! || a - b);
}
