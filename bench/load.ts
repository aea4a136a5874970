/**
 * Open-loop load generator for an OpenAI-compatible server: for each rate of `--rates`, `--duration` seconds of
 * requests sent at seeded Poisson arrival times (whether or not earlier ones have finished), prompt and output lengths
 * from a seeded lognormal clipped to the model's context, spread uniformly over the base model and its adapters
 * (bench/load-gen.ts). Each request is a streamed /v1/completions with token-id prompt, max_tokens = min_tokens = the
 * drawn output length and ignore_eos, so every request generates exactly what was drawn.
 *
 *   npm run build && node dist/bench/load.js                      (loraforge serve on tiny-llama and its 4 fixture adapters)
 *   node dist/bench/load.js --model DIR --adapter a=DIR_A --device cuda --dtype bfloat16 --rates 1,2,4,8 --duration 60
 *   node dist/bench/load.js --url http://HOST:PORT/v1 --vocab 32000 --max-context 4096   (any running server: every model it lists)
 *
 * Without --url it starts `loraforge serve` (bench/serve-child.ts). Prints one JSON line per rate:
 * {rate, requests, completed, failed, duration_s, throughput_tok_s, req_s, ttft_p50_ms, ttft_p99_ms, tpot_p50_ms,
 * tpot_p99_ms, e2e_p50_ms, e2e_p99_ms, send_lag_p99_ms}; percentiles are nearest-rank over the completed requests.
 * TTFT: from sending to the first non-empty text delta; TPOT: (last text delta - first) / (tokens - 1); e2e: from
 * sending to the end of the stream (a stream with no text at all, e.g. one token that is a lone UTF-8 byte, is timed
 * by its first and last choice chunks). A request fails on an HTTP error, an error event, no usage, or a token count
 * other than the one asked for; failures go to stderr. Exits 1 when any request failed.
 */
import { readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { percentile, schedule, streamSeed, type ScheduledRequest } from './load-gen.js';
import { modelAndAdapters, startServe, type ServeChild } from './serve-child.js';

interface Args {
  readonly modelDir: string;
  readonly adapters: { name: string; path: string }[];
  readonly url: string | undefined;
  /** The folder whose config.json gives the context and vocabulary: --model, or the fixture when this bench starts the server. */
  readonly configDir: string | undefined;
  readonly rates: number[];
  readonly durationS: number;
  readonly seed: number;
  readonly promptMean: number;
  readonly outputMean: number;
  readonly sigma: number;
  readonly maxContext: number | undefined;
  readonly vocab: number | undefined;
  readonly serveArgs: string[];
  readonly label: string | undefined;
}

function parse(): Args {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      adapter: { type: 'string', multiple: true },
      url: { type: 'string' },
      rates: { type: 'string', default: '1,2,4,8' },
      duration: { type: 'string', default: '30' },
      seed: { type: 'string', default: '0' },
      'prompt-mean': { type: 'string', default: '64' },
      'output-mean': { type: 'string', default: '64' },
      sigma: { type: 'string', default: '1' },
      'max-context': { type: 'string' },
      vocab: { type: 'string' },
      device: { type: 'string' },
      dtype: { type: 'string' },
      'max-batch': { type: 'string' },
      label: { type: 'string' },
    },
  });
  const number = (key: keyof typeof values, text: string | undefined, min: number, integer = false): number => {
    const n = Number(text);
    if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) throw new Error(`--${key} must be ${integer ? 'an integer' : 'a number'} of at least ${min}, got ${JSON.stringify(text)}.`);
    return n;
  };
  const optional = (key: 'max-context' | 'vocab', min: number) => (values[key] === undefined ? undefined : number(key, values[key], min, true));
  if (values.url !== undefined && (values.device !== undefined || values.dtype !== undefined || values['max-batch'] !== undefined))
    throw new Error('--device, --dtype and --max-batch configure the server this bench starts; with --url, configure the running server instead.');
  const serveArgs = (['device', 'dtype', 'max-batch'] as const).flatMap((k) => (values[k] === undefined ? [] : [`--${k}`, values[k]!]));
  const served = modelAndAdapters(values.model, values.adapter);
  return {
    ...served,
    url: values.url?.replace(/\/+$/, ''),
    configDir: values.url === undefined ? served.modelDir : values.model,
    rates: values.rates.split(',').map((r) => number('rates', r.trim(), Number.MIN_VALUE)),
    durationS: number('duration', values.duration, Number.MIN_VALUE),
    seed: number('seed', values.seed, 0, true),
    promptMean: number('prompt-mean', values['prompt-mean'], 1),
    outputMean: number('output-mean', values['output-mean'], 1),
    sigma: number('sigma', values.sigma, 0),
    maxContext: optional('max-context', 2),
    vocab: optional('vocab', 1),
    serveArgs,
    label: values.label,
  };
}

/** max_position_embeddings and vocab_size of the model folder's config.json, where it has them. */
function modelLimits(modelDir: string): { maxContext?: number; vocab?: number } {
  let config: { max_position_embeddings?: unknown; vocab_size?: unknown };
  try {
    config = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as typeof config;
  } catch {
    return {};
  }
  const int = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined);
  return { maxContext: int(config.max_position_embeddings), vocab: int(config.vocab_size) };
}

interface Outcome {
  readonly ok: boolean;
  readonly error?: string;
  readonly sendLagMs: number;
  readonly ttftMs: number;
  readonly tpotMs: number | null;
  readonly e2eMs: number;
  readonly tokens: number;
}

type Chunk = { error?: { message?: string }; choices?: { text?: string; delta?: { content?: string } }[]; usage?: { completion_tokens?: number } | null };

/** Sends one streamed completion and times it; never throws. */
async function send(baseURL: string, req: ScheduledRequest, lagMs: number): Promise<Outcome> {
  const start = performance.now();
  const fail = (error: string): Outcome => ({ ok: false, error: `${req.model}, ${req.promptIds.length} + ${req.outputTokens} tokens: ${error}`, sendLagMs: lagMs, ttftMs: 0, tpotMs: null, e2eMs: 0, tokens: 0 });
  try {
    const body = { model: req.model, prompt: req.promptIds, max_tokens: req.outputTokens, min_tokens: req.outputTokens, ignore_eos: true, temperature: 0, stream: true, stream_options: { include_usage: true } };
    const res = await fetch(`${baseURL}/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (res.status !== 200 || !res.body) return fail(`HTTP ${res.status} ${(await res.text()).slice(0, 300)}`);
    const decoder = new TextDecoder();
    let buffered = '';
    let first: number | null = null;
    let last = 0;
    // A stream whose tokens all decode to no text (a lone byte of a multi-byte character) is timed by its choice chunks.
    let firstChoice: number | null = null;
    let lastChoice = 0;
    let tokens: number | null = null;
    for await (const bytes of res.body) {
      const now = performance.now();
      buffered += decoder.decode(bytes as Uint8Array, { stream: true });
      let end: number;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const event = buffered.slice(0, end).trim();
        buffered = buffered.slice(end + 2);
        if (!event.startsWith('data:')) continue;
        const data = event.slice(5).trim();
        if (data === '[DONE]') continue;
        const chunk = JSON.parse(data) as Chunk;
        if (chunk.error) return fail(`stream error ${chunk.error.message ?? JSON.stringify(chunk.error)}`);
        const choices = chunk.choices ?? [];
        if (choices.length > 0) {
          firstChoice ??= now;
          lastChoice = now;
        }
        if (choices.some((c) => (c.text ?? c.delta?.content ?? '') !== '')) {
          first ??= now;
          last = now;
        }
        if (chunk.usage?.completion_tokens !== undefined) tokens = chunk.usage.completion_tokens;
      }
    }
    const done = performance.now();
    if (tokens === null) return fail('the stream carried no usage (stream_options.include_usage).');
    if (tokens !== req.outputTokens) return fail(`generated ${tokens} tokens, not the ${req.outputTokens} asked for (min_tokens / ignore_eos not honoured?).`);
    if (first === null && firstChoice === null) return fail('the stream carried no choice.');
    const [t1, tn] = first === null ? [firstChoice!, lastChoice] : [first, last];
    return { ok: true, sendLagMs: lagMs, ttftMs: t1 - start, tpotMs: tokens > 1 ? (tn - t1) / (tokens - 1) : null, e2eMs: done - start, tokens };
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (x: number | null, digits = 2) => (x === null ? null : Number(x.toFixed(digits)));

/** Sends a rate's schedule open-loop and summarises it. */
async function runRate(baseURL: string, rate: number, requests: readonly ScheduledRequest[]) {
  const t0 = performance.now();
  const pending: Promise<Outcome>[] = [];
  for (const req of requests) {
    const wait = req.atMs - (performance.now() - t0);
    if (wait > 0) await sleep(wait);
    pending.push(send(baseURL, req, performance.now() - t0 - req.atMs));
  }
  const outcomes = await Promise.all(pending);
  const seconds = (performance.now() - t0) / 1000;
  const ok = outcomes.filter((o) => o.ok);
  for (const o of outcomes) if (!o.ok) console.error(`rate ${rate}: ${o.error}`);
  const tokens = ok.reduce((s, o) => s + o.tokens, 0);
  const ms = (values: (number | null)[], p: number) => round(percentile(values.filter((v): v is number => v !== null), p));
  return {
    rate,
    requests: requests.length,
    completed: ok.length,
    failed: outcomes.length - ok.length,
    duration_s: round(seconds, 3),
    throughput_tok_s: round(tokens / seconds, 1),
    req_s: round(ok.length / seconds, 3),
    ttft_p50_ms: ms(ok.map((o) => o.ttftMs), 50),
    ttft_p99_ms: ms(ok.map((o) => o.ttftMs), 99),
    tpot_p50_ms: ms(ok.map((o) => o.tpotMs), 50),
    tpot_p99_ms: ms(ok.map((o) => o.tpotMs), 99),
    e2e_p50_ms: ms(ok.map((o) => o.e2eMs), 50),
    e2e_p99_ms: ms(ok.map((o) => o.e2eMs), 99),
    send_lag_p99_ms: ms(outcomes.map((o) => o.sendLagMs), 99),
  };
}

async function main(): Promise<number> {
  const args = parse();
  const server: ServeChild | null = args.url === undefined ? await startServe({ modelDir: args.modelDir, adapters: args.adapters, serveArgs: args.serveArgs }) : null;
  try {
    const baseURL = args.url ?? server!.baseURL;
    const listed = (await (await fetch(`${baseURL}/models`)).json()) as { data?: { id: string; max_model_len?: number }[] };
    const models = server ? [basename(resolve(args.modelDir)), ...args.adapters.map((a) => a.name)] : (listed.data ?? []).map((m) => m.id);
    if (models.length === 0) throw new Error(`${baseURL}/models lists no models.`);
    const limits = args.configDir === undefined ? {} : modelLimits(args.configDir);
    const maxContext = args.maxContext ?? limits.maxContext ?? listed.data?.[0]?.max_model_len;
    const vocab = args.vocab ?? limits.vocab;
    if (maxContext === undefined || vocab === undefined) throw new Error('The model\'s context and vocabulary size are unknown: pass --max-context N and --vocab N (or --model DIR with a config.json).');

    // One request per model first, not counted: the server's first steps include compilation and pool growth.
    for (const model of models) {
      const warm = await send(baseURL, { atMs: 0, model, promptIds: [1, 2, 3, 4], outputTokens: 4 }, 0);
      if (!warm.ok) throw new Error(`warm-up failed: ${warm.error}`);
    }
    let failed = 0;
    for (const [i, rate] of args.rates.entries()) {
      const requests = schedule({ seed: streamSeed(args.seed, i), rate, durationS: args.durationS, promptMean: args.promptMean, outputMean: args.outputMean, sigma: args.sigma, maxContext, vocabSize: vocab, models });
      const line = await runRate(baseURL, rate, requests);
      failed += line.failed;
      console.log(JSON.stringify(args.label === undefined ? line : { label: args.label, ...line }));
    }
    return failed === 0 ? 0 : 1;
  } finally {
    await server?.stop();
  }
}

try {
  process.exitCode = await main();
} catch (error) {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 2;
}
