import { basename, resolve } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { AutoModelForCausalLM } from '../models/auto.js';
import { loadIn4bit } from '../quant/index.js';
import { AutoTokenizer } from '../tokenizer/index.js';
import type { AdapterBackend } from './adapter-backend.js';
import { checkAdapterRoot, findAdapterDir } from './adapter-path.js';
import { AdapterLoadError, AdapterRegistry } from './adapter-registry.js';
import { unauthorized } from './api-error.js';
import { bearerMatches } from './auth.js';
import { corsPolicy, installCors } from './cors.js';
import { installErrorHandling } from './error-handling.js';
import { GrammarEngine } from './grammar/grammar-engine.js';
import { grammarVocabulary } from './grammar/vocabulary.js';
import { allowedHostNames, hostMatches, hostNotAllowed } from './host-check.js';
import { installJsonBodyParser } from './json-body.js';
import { Metrics } from './metrics.js';
import { peftAdapterBackend } from './peft-adapter-backend.js';
import { registerAdapterRoutes } from './routes/adapter-routes.js';
import { registerGenerationRoutes } from './routes/generation-routes.js';
import { registerModelRoutes } from './routes/model-routes.js';
import { registerObservabilityRoutes } from './routes/observability-routes.js';
import { registerResponsesRoute } from './routes/responses-route.js';
import { Scheduler } from './scheduler.js';
import type { ServeContext } from './serve-context.js';
import { ServeOptionError } from './serve-option-error.js';
import { SERVER_DEFAULTS, type ServerOptions } from './server-options.js';

export interface RunningServer {
  readonly app: FastifyInstance;
  readonly host: string;
  readonly port: number;
  /** Ends every queued and running generation (503), then stops listening. */
  close(): Promise<void>;
}

/** Loads the model, its tokenizer and the start-up adapters, and listens: an OpenAI-compatible multi-adapter server. */
export async function createServer(options: ServerOptions): Promise<RunningServer> {
  const o = { ...SERVER_DEFAULTS, ...withoutUndefined(options) };
  // Option mistakes surface before the model loads.
  const adapterRoot = o.adapterRoot ? await checkAdapterRoot(resolve(o.adapterRoot)) : null;
  if (o.loadAdaptersOnDemand && adapterRoot === null) {
    throw new ServeOptionError('--load-adapters-on-demand needs --adapter-root DIR: the folder whose adapter folders requests may name.');
  }
  const hostNames = allowedHostNames(o.host, o.allowedHosts ?? []);
  const cors = corsPolicy(o.corsOrigins ?? []);
  const maxKvBlocks = o.maxKvBlocks ?? Number.POSITIVE_INFINITY;
  if (maxKvBlocks !== Number.POSITIVE_INFINITY && (!Number.isInteger(maxKvBlocks) || maxKvBlocks < 1)) {
    throw new ServeOptionError(`--max-kv-blocks must be a positive whole number, got ${maxKvBlocks}.`);
  }
  const load = { dtype: options.dtype, device: options.device };
  const model = o.qlora ? await loadIn4bit(options.modelDir, load) : await AutoModelForCausalLM.fromPretrained(options.modelDir, load);
  const tokenizer = await AutoTokenizer.fromPretrained(options.modelDir);
  // Errors (a failed forward pass, a 500) are always logged; requests only with `logger`. forceCloseConnections:
  // close() runs after every generation has ended, so a socket still open is idle or a client's unused pre-opened
  // connection, which would otherwise hold shutdown until its timeout.
  const app = Fastify({ bodyLimit: o.bodyLimit, logger: { level: o.logger ? 'info' : 'error' }, forceCloseConnections: true });
  installJsonBodyParser(app);
  let listening = false;
  if (o.maxKvBlocks !== undefined) model.configureKvPool({ maxBlocks: o.maxKvBlocks });
  const prefixCaching = o.prefixCaching ?? false;
  const scheduler = new Scheduler(model, {
    maxBatch: o.maxBatch,
    maxQueue: o.maxQueue,
    prefixCaching,
    onError: (error) => app.log.error(error),
  });
  const baseModelName = o.modelName ?? basename(resolve(options.modelDir));
  const adapterDtype = !o.adapterDtype || o.adapterDtype === 'model' ? model.dtype : o.adapterDtype;
  const backend: AdapterBackend = (options.adapterBackend ?? peftAdapterBackend)(model, { adapterDtype });
  const adapters = new AdapterRegistry(backend, { baseModelName, maxLoaded: o.maxAdapters, exclusive: (fn) => scheduler.exclusive(fn),
    // A start-up adapter's failure reaches the operator as the error createServer throws.
    onLoadError: (name, error) => {
      if (listening) app.log.error({ err: error, adapter: name }, `adapter "${name}" failed to load`);
    },
    discover: o.loadAdaptersOnDemand && adapterRoot !== null ? (name) => findAdapterDir(adapterRoot, name) : undefined,
  });
  const metrics = new Metrics({ queueDepth: () => scheduler.queueDepth, running: () => scheduler.runningCount, loadedAdapters: () => adapters.loadedCount });
  const contextLength = model.config.maxPositionEmbeddings;
  const stopTokenIds = new Set([...tokenizer.eosTokenIds, ...model.config.eosTokenIds]);
  const ctx: ServeContext = {
    scheduler,
    adapters,
    tokenizer,
    metrics,
    grammar: new GrammarEngine(() => grammarVocabulary(tokenizer, model.config.vocabSize), [...stopTokenIds]),
    limits: { maxTokens: Math.min(o.maxTokens, contextLength), contextLength, requestTimeoutMs: o.requestTimeoutMs, maxKvBlocks },
    stopTokenIds,
    vocabSize: model.config.vocabSize,
    baseModelName,
    adapterRoot,
    apiKey: o.apiKey ?? null,
    prefixCaching,
  };

  installErrorHandling(app);
  let port = o.port;
  if (hostNames) {
    // Before everything else: a page that reached a local server through DNS rebinding names its own host here.
    app.addHook('onRequest', async (request) => {
      const header = request.headers.host ?? '';
      if (!hostMatches(header, hostNames, port)) throw hostNotAllowed(header);
    });
  }
  if (cors) installCors(app, cors);
  const apiKey = ctx.apiKey;
  if (apiKey) {
    // onRequest runs before the body is read, so an unauthenticated client cannot make the server parse anything.
    // The matched route decides, not the raw URL, so no spelling of a /v1 path (percent-encoding, case) skips it.
    app.addHook('onRequest', async (request) => {
      if (request.routeOptions.url?.startsWith('/v1/') && !bearerMatches(request.headers.authorization, apiKey)) throw unauthorized();
    });
  }
  app.addHook('onResponse', async (request, reply) => {
    metrics.recordHttp(request.routeOptions.url ?? 'unmatched', reply.statusCode);
  });
  registerGenerationRoutes(app, ctx);
  registerResponsesRoute(app, ctx);
  registerModelRoutes(app, ctx, Math.floor(Date.now() / 1000));
  registerAdapterRoutes(app, ctx);
  registerObservabilityRoutes(app, ctx);

  const close = async () => {
    await scheduler.close();
    await app.close();
  };
  try {
    for (const a of options.adapters ?? []) await adapters.add(a.name, resolve(a.path));
    await app.listen({ host: o.host, port: o.port });
  } catch (error) {
    await close();
    throw error instanceof AdapterLoadError ? error.cause : error;
  }
  listening = true;
  const address = app.server.address();
  if (typeof address === 'object' && address) port = address.port;
  return { app, host: o.host, port, close };
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
