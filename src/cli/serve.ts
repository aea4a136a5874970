import { registerCudaBackend } from '../backend/cuda/index.js';
import { FormatError, HubError } from '../io/errors.js';
import { ConfigError } from '../models/config.js';
import { PeftError } from '../peft/index.js';
import { ApiError, createServer, SERVER_DEFAULTS, ServeOptionError, type AdapterSpec, type ServerOptions } from '../serve/index.js';
import type { DType } from '../tensor/dtype.js';
import { TokenizerError } from '../tokenizer/index.js';
import { UsageError } from './errors.js';
import { commandHelp, resolveOptions, splitArgs, type OptionSpecs } from './options.js';

/** Every option of `loraforge serve`; --adapter and --cors-origin may repeat and are taken out of argv first (takeRepeated). */
const SERVE_OPTIONS: OptionSpecs = {
  model: { kind: 'string', help: 'base model folder or Hub id (required)' },
  adapter: { kind: 'string', help: 'NAME=DIR: serve the PEFT adapter in DIR as model NAME (repeatable)' },
  'served-model-name': { kind: 'string', help: 'name clients use for the base model (default: the folder name)' },
  host: { kind: 'string', default: SERVER_DEFAULTS.host, help: 'address to listen on; 0.0.0.0 exposes the server to the network' },
  port: { kind: 'number', integer: true, min: 0, max: 65535, default: SERVER_DEFAULTS.port, help: 'TCP port (0: any free port)' },
  'allowed-hosts': { kind: 'string', help: 'comma-separated host names Host headers may name besides localhost, 127.0.0.1 and [::1] (checked always on loopback, else only when given)' },
  'cors-origin': { kind: 'string', help: 'scheme://host[:port] whose browser pages may call the server, or * for any: preflights answered, Access-Control-Allow-Origin sent (repeatable; default: no CORS headers)' },
  'api-key': { kind: 'string', help: 'require "Authorization: Bearer KEY" on every /v1 route (default: $LORAFORGE_API_KEY, else none)' },
  'adapter-root': { kind: 'string', help: 'existing folder that POST /v1/adapters and /v1/load_lora_adapter may load from (default: run-time loading off)' },
  'load-adapters-on-demand': { kind: 'boolean', default: false, help: 'a request whose model names a folder under --adapter-root that is not served loads it first (once, however many requests name it)' },
  'max-adapters': { kind: 'number', integer: true, min: 1, default: SERVER_DEFAULTS.maxAdapters, help: 'adapters loaded at once; idle ones are evicted least recently used first' },
  'max-batch': { kind: 'number', integer: true, min: 1, default: SERVER_DEFAULTS.maxBatch, help: 'sequences decoded together per step' },
  'max-queue': { kind: 'number', integer: true, min: 1, default: SERVER_DEFAULTS.maxQueue, help: 'requests waiting for a batch slot before 429' },
  'enable-prefix-caching': { kind: 'boolean', default: false, help: 'share the KV blocks of identical prompt prefixes (per adapter) between requests, as vLLM\'s automatic prefix caching; prefills then run batch-invariant' },
  'max-kv-blocks': { kind: 'number', integer: true, min: 1, help: 'KV pool size in blocks of 16 positions (default: grows as needed); requests wait for blocks when it is full' },
  'max-tokens': { kind: 'number', integer: true, min: 1, default: SERVER_DEFAULTS.maxTokens, help: 'largest max_tokens a request may ask for' },
  'request-timeout': { kind: 'number', min: 0, default: SERVER_DEFAULTS.requestTimeoutMs / 1000, help: 'seconds a request may take from queueing to its last token' },
  'body-limit': { kind: 'number', integer: true, min: 1, default: SERVER_DEFAULTS.bodyLimit, help: 'largest request body in bytes' },
  device: { kind: 'string', default: 'cpu', help: 'cpu, cuda or cuda:N' },
  dtype: { kind: 'enum', values: ['auto', 'float32', 'bfloat16', 'float16'], default: 'auto', help: 'dtype of the base weights (auto: config.json\'s)' },
  qlora: { kind: 'boolean', default: false, help: 'quantize the base model to 4-bit NF4 on load, as train --qlora does (decoder projections, and a mixture-of-experts model\'s experts); serve a QLoRA adapter on the base it trained on' },
  'adapter-dtype': { kind: 'enum', values: ['model', 'float32', 'bfloat16', 'float16'], default: 'model', help: 'dtype adapters are stored and computed in (model: the base weights\' dtype, as vLLM serves LoRA; float32: as PEFT computes)' },
  log: { kind: 'boolean', default: false, help: 'log every request (JSON lines on stdout)' },
  help: { kind: 'boolean', help: 'show this help' },
};

export const SERVE_HELP = commandHelp(
  'serve --model DIR [--adapter NAME=DIR ...] [options]',
  'OpenAI-compatible HTTP server (/v1/models, /v1/completions, /v1/chat/completions, /v1/adapters, /v1/load_lora_adapter, /v1/unload_lora_adapter, /health, /metrics) over a base model and its LoRA adapters, batched together.',
  SERVE_OPTIONS,
);

/** The values of a repeatable flag (--NAME V or --NAME=V, '' when V is missing), taken out of argv before the other flags are parsed. */
function takeRepeated(argv: readonly string[], name: string): { values: string[]; rest: string[] } {
  const values: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === `--${name}`) values.push(argv[++i] ?? '');
    else if (word.startsWith(`--${name}=`)) values.push(word.slice(name.length + 3));
    else rest.push(word);
  }
  return { values, rest };
}

function adapterSpec(value: string): AdapterSpec {
  const eq = value.indexOf('=');
  if (eq <= 0 || eq === value.length - 1) throw new UsageError(`--adapter needs NAME=DIR, got ${JSON.stringify(value)}.`);
  return { name: value.slice(0, eq), path: value.slice(eq + 1) };
}

/** The server options of one invocation, or null when help was asked for. */
export function parseServeArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ServerOptions | null {
  const adapterArgs = takeRepeated(argv, 'adapter');
  const corsArgs = takeRepeated(adapterArgs.rest, 'cors-origin');
  const { flags, positionals } = splitArgs(corsArgs.rest, SERVE_OPTIONS);
  if (positionals.length > 0) throw new UsageError(`Unexpected argument "${positionals[0]}"; every option is a --flag.`);
  const v = resolveOptions(SERVE_OPTIONS, flags, null);
  if (v['help']) return null;
  if (v['model'] === undefined) throw new UsageError('--model is required: the folder (or Hub id) of the base model.');
  const apiKey = (v['api-key'] as string | undefined) ?? env['LORAFORGE_API_KEY'];
  return {
    modelDir: v['model'] as string,
    modelName: v['served-model-name'] as string | undefined,
    adapters: adapterArgs.values.map(adapterSpec),
    host: v['host'] as string,
    port: v['port'] as number,
    allowedHosts: ((v['allowed-hosts'] as string | undefined) ?? '').split(',').map((h) => h.trim()).filter((h) => h.length > 0),
    corsOrigins: corsArgs.values,
    apiKey: apiKey || null,
    adapterRoot: (v['adapter-root'] as string | undefined) ?? null,
    loadAdaptersOnDemand: v['load-adapters-on-demand'] as boolean,
    maxAdapters: v['max-adapters'] as number,
    maxBatch: v['max-batch'] as number,
    maxQueue: v['max-queue'] as number,
    maxTokens: v['max-tokens'] as number,
    prefixCaching: v['enable-prefix-caching'] as boolean,
    maxKvBlocks: v['max-kv-blocks'] as number | undefined,
    requestTimeoutMs: (v['request-timeout'] as number) * 1000,
    bodyLimit: v['body-limit'] as number,
    device: v['device'] as string,
    dtype: v['dtype'] as DType | 'auto',
    qlora: v['qlora'] as boolean,
    adapterDtype: v['adapter-dtype'] as DType | 'model',
    logger: v['log'] as boolean,
  };
}

/** `loraforge serve ...`; argv holds the arguments after the command name. Resolves with the exit code after SIGINT/SIGTERM. */
export async function serveCommand(argv: string[]): Promise<number> {
  // A usage mistake is one sentence on stderr and exit code 2 (main's report); the help only on --help.
  const options = parseServeArgs(argv);
  if (options === null) {
    process.stdout.write(`${SERVE_HELP}\n`);
    return 0;
  }
  if (options.device?.startsWith('cuda')) registerCudaBackend();
  let server;
  try {
    server = await createServer(options);
  } catch (err) {
    if (err instanceof ServeOptionError) {
      process.stderr.write(`loraforge serve: ${err.message}\n`);
      return 2;
    }
    if (err instanceof ConfigError || err instanceof FormatError || err instanceof HubError || err instanceof TokenizerError || err instanceof PeftError || err instanceof ApiError) {
      process.stderr.write(`loraforge serve: ${err.message}\n`);
      return 1;
    }
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      process.stderr.write(`loraforge serve: ${options.host}:${options.port} is in use; pick another --port.\n`);
      return 1;
    }
    throw err;
  }
  process.stdout.write(
    `loraforge serve: listening on http://${server.host}:${server.port}/v1 (adapters: ${options.adapters?.map((a) => a.name).join(', ') || 'none'}${options.apiKey ? ', API key required' : ''})\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await server.close();
  return 0;
}
