/**
 * Loopback soak of `loraforge serve`: the real CLI in a child process on a free port, `--clients` concurrent clients
 * sending greedy completions and chats (streamed and not) to the base model and every adapter for `--duration`
 * seconds. Before the load each request kind is sent alone, one at a time; under the load and again after it, every
 * answer must equal that reference text (the scheduler is batch-invariant). The server's resident memory, V8 heap in
 * use and external memory are read from its /metrics every `--sample` seconds, with a full collection forced in the
 * server every `--gc-every` seconds (default 1; 0 leaves collection to V8).
 *
 *   npm run build && node dist/bench/soak.js                    (10 minutes, tiny-llama and its 4 fixture adapters)
 *   node dist/bench/soak.js --duration 30 --warmup 8 --sample 1  (what test/serve/soak.test.ts runs)
 *   node dist/bench/soak.js --model DIR --adapter a=DIR_A --adapter b=DIR_B
 *
 * Prints JSON lines: {"event":"start"}, {"event":"reference"}, one {"event":"sample"} per sample, and last
 * {"event":"summary"}; exits 1 when a request failed or an output differed, else 0.
 */
import { basename, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { modelAndAdapters, startServe, type AdapterArg, type ServeChild } from './serve-child.js';

interface Args {
  modelDir: string;
  adapters: AdapterArg[];
  clients: number;
  durationS: number;
  /** Seconds of load before memory counts: pools, caches and the JIT fill up during it. */
  warmupS: number;
  sampleS: number;
  /** Seconds between full collections forced in the server (0: none), so that RSS follows live memory, not garbage. */
  gcEveryS: number;
}

function parse(): Args {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      adapter: { type: 'string', multiple: true },
      clients: { type: 'string', default: '32' },
      duration: { type: 'string', default: '600' },
      warmup: { type: 'string', default: '60' },
      sample: { type: 'string', default: '5' },
      'gc-every': { type: 'string', default: '1' },
    },
  });
  const number = (key: 'clients' | 'duration' | 'warmup' | 'sample' | 'gc-every', min: number): number => {
    const n = Number(values[key]);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${key} must be a number of at least ${min}, got ${JSON.stringify(values[key])}.`);
    return n;
  };
  const args: Args = {
    ...modelAndAdapters(values.model, values.adapter),
    clients: Math.floor(number('clients', 1)),
    durationS: number('duration', 1),
    warmupS: number('warmup', 0),
    sampleS: number('sample', 0.1),
    gcEveryS: number('gc-every', 0),
  };
  if (args.warmupS >= args.durationS) throw new Error(`--warmup (${args.warmupS} s) must be shorter than --duration (${args.durationS} s).`);
  return args;
}

/** One kind of request; the same kind must always produce the same text. */
interface Job {
  readonly key: string;
  readonly path: '/completions' | '/chat/completions';
  readonly body: Record<string, unknown>;
}

const PROMPTS = ['The quick brown fox', 'Once upon a time, in a land far away,', 'LoRA adapters', 'def fibonacci(n):', 'Hello', 'Serving many adapters over one base model'];

function jobsFor(models: readonly string[]): Job[] {
  const jobs: Job[] = [];
  for (const [m, model] of models.entries()) {
    for (const [p, prompt] of PROMPTS.entries()) {
      const maxTokens = 8 + ((m * 7 + p * 5) % 17);
      const chat = (m + p) % 2 === 1;
      jobs.push({
        key: `${model} ${chat ? 'chat' : 'completion'} ${p}`,
        path: chat ? '/chat/completions' : '/completions',
        body: chat
          ? { model, messages: [{ role: 'user', content: prompt }], max_tokens: maxTokens, temperature: 0 }
          : { model, prompt, max_tokens: maxTokens, temperature: 0 },
      });
    }
  }
  return jobs;
}

interface Answer {
  readonly text: string;
  readonly tokens: number;
}

/** Sends one request; throws with the status and body when it fails. Streamed answers are joined from their events. */
async function send(baseURL: string, job: Job, stream: boolean): Promise<Answer> {
  const body = stream ? { ...job.body, stream: true, stream_options: { include_usage: true } } : job.body;
  const res = await fetch(`${baseURL}${job.path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const raw = await res.text();
  if (res.status !== 200) throw new Error(`${job.key}: HTTP ${res.status} ${raw.slice(0, 200)}`);
  if (!stream) {
    const json = JSON.parse(raw) as { choices: { text?: string; message?: { content: string } }[]; usage: { completion_tokens: number } };
    const choice = json.choices[0]!;
    return { text: choice.text ?? choice.message!.content, tokens: json.usage.completion_tokens };
  }
  let text = '';
  let tokens = 0;
  for (const event of raw.split('\n\n')) {
    if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
    const chunk = JSON.parse(event.slice(6)) as { error?: { message: string }; choices?: { text?: string; delta?: { content?: string } }[]; usage?: { completion_tokens: number } | null };
    if (chunk.error) throw new Error(`${job.key}: stream error ${chunk.error.message}`);
    for (const c of chunk.choices ?? []) text += c.text ?? c.delta?.content ?? '';
    if (chunk.usage) tokens = chunk.usage.completion_tokens;
  }
  return { text, tokens };
}

/** Starts `loraforge serve` on a free loopback port; resolves once it listens. */
function startServer(args: Args): Promise<ServeChild> {
  // The server's garbage (each decode step's small host arrays) piles up between V8's collections and drops at each,
  // a sawtooth of about a third of RSS on the fixture model; a forced collection every few seconds leaves the live set.
  const gc = args.gcEveryS > 0 ? ['--expose-gc', '--import', `data:text/javascript,setInterval(() => globalThis.gc(), ${args.gcEveryS * 1000}).unref();`] : [];
  return startServe({ modelDir: args.modelDir, adapters: args.adapters, nodeArgs: gc, serveArgs: ['--max-batch', '32'] });
}

/** The server's memory in MiB from its /metrics: resident, V8 heap in use (garbage included) and external (ArrayBuffers). */
interface Memory {
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
}

async function serverMemory(baseURL: string): Promise<Memory> {
  const text = await (await fetch(`${baseURL.replace(/\/v1$/, '')}/metrics`)).text();
  const mib = (name: string) => {
    const match = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
    if (!match) throw new Error(`/metrics has no ${name} line.`);
    return Number(match[1]) / 2 ** 20;
  };
  return { rss: mib('process_resident_memory_bytes'), heapUsed: mib('nodejs_heap_size_used_bytes'), external: mib('nodejs_external_memory_bytes') };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const round = (x: number, digits = 1) => Number(x.toFixed(digits));

/**
 * Growth compares the median of the last quarter of the post-warm-up samples with that of the first quarter, so a
 * single sample taken just before a garbage collection does not count as growth.
 */
function quarters(values: readonly number[]): { first: number; last: number; max: number; growth: number } {
  const quarter = Math.max(1, Math.floor(values.length / 4));
  const first = median(values.slice(0, quarter));
  const last = median(values.slice(-quarter));
  return { first: round(first), last: round(last), max: round(Math.max(...values)), growth: round((last - first) / first, 4) };
}

async function main(): Promise<number> {
  const args = parse();
  const log = (line: object) => console.log(JSON.stringify(line));
  const server = await startServer(args);
  const baseURL = server.baseURL;
  try {
    const jobs = jobsFor([basename(resolve(args.modelDir)), ...args.adapters.map((a) => a.name)]);
    log({ event: 'start', url: baseURL, clients: args.clients, models: 1 + args.adapters.length, request_kinds: jobs.length, duration_s: args.durationS, warmup_s: args.warmupS, gc_every_s: args.gcEveryS });

    const referenceStart = performance.now();
    const reference = new Map<string, string>();
    for (const job of jobs) reference.set(job.key, (await send(baseURL, job, false)).text);
    log({ event: 'reference', request_kinds: jobs.length, seconds: round((performance.now() - referenceStart) / 1000, 2) });

    let requests = 0;
    let errors = 0;
    let tokens = 0;
    const errorExamples: string[] = [];
    const mismatches: string[] = [];
    const check = (job: Job, text: string, when: string) => {
      if (text !== reference.get(job.key)) mismatches.push(`${when} ${job.key}: ${JSON.stringify(text)} != ${JSON.stringify(reference.get(job.key))}`);
    };

    const start = performance.now();
    const end = start + args.durationS * 1000;
    const samples: (Memory & { t: number })[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const t = (performance.now() - start) / 1000;
        const memory = await serverMemory(baseURL);
        samples.push({ t, ...memory });
        log({ event: 'sample', t_s: round(t), phase: t < args.warmupS ? 'warmup' : 'load', requests, errors, rss_mib: round(memory.rss), heap_used_mib: round(memory.heapUsed), external_mib: round(memory.external) });
        await new Promise((r) => setTimeout(r, args.sampleS * 1000));
      }
    })();

    let next = 0;
    await Promise.all(
      Array.from({ length: args.clients }, async () => {
        while (performance.now() < end) {
          const i = next++;
          const job = jobs[(i * 7) % jobs.length]!;
          try {
            const answer = await send(baseURL, job, i % 2 === 0);
            tokens += answer.tokens;
            check(job, answer.text, 'under load');
          } catch (error) {
            errors++;
            if (errorExamples.length < 5) errorExamples.push(error instanceof Error ? error.message : String(error));
          }
          requests++;
        }
      }),
    );
    const seconds = (performance.now() - start) / 1000;
    sampling = false;
    await sampler;

    const underLoad = mismatches.length;
    for (const job of jobs) check(job, (await send(baseURL, job, false)).text, 'after load');

    const loaded = samples.filter((s) => s.t >= args.warmupS);
    const rss = quarters(loaded.map((s) => s.rss));
    const heapUsed = quarters(loaded.map((s) => s.heapUsed));
    const external = quarters(loaded.map((s) => s.external));
    log({
      event: 'summary',
      requests,
      errors,
      error_examples: errorExamples,
      identical_under_load: underLoad === 0,
      identical_after_load: mismatches.length === underLoad,
      mismatches: mismatches.slice(0, 5),
      seconds: round(seconds, 2),
      requests_per_s: round(requests / seconds),
      tokens_per_s: round(tokens / seconds),
      rss_mib: loaded.map((s) => round(s.rss)),
      rss_first_quarter_mib: rss.first,
      rss_last_quarter_mib: rss.last,
      rss_max_mib: rss.max,
      rss_growth: rss.growth,
      heap_used_first_quarter_mib: heapUsed.first,
      heap_used_last_quarter_mib: heapUsed.last,
      heap_used_max_mib: heapUsed.max,
      external_first_quarter_mib: external.first,
      external_last_quarter_mib: external.last,
      external_max_mib: external.max,
    });
    return errors === 0 && mismatches.length === 0 ? 0 : 1;
  } finally {
    await server.stop();
  }
}

process.exitCode = await main();
