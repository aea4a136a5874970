import type { PreTrainedTokenizer } from '../tokenizer/index.js';
import type { AdapterRegistry } from './adapter-registry.js';
import type { GrammarEngine } from './grammar/grammar-engine.js';
import type { Metrics } from './metrics.js';
import type { Scheduler } from './scheduler.js';

/** Limits every generation request is checked against. */
export interface GenerationLimits {
  /** Largest max_tokens a request may ask for; also the default where a request gives none (chat). */
  readonly maxTokens: number;
  /** Prompt plus generated tokens at most (the model's max_position_embeddings). */
  readonly contextLength: number;
  readonly requestTimeoutMs: number;
  /** KV blocks (KV_BLOCK_SIZE positions each) one sequence may need at most: the pool's limit, or Infinity. */
  readonly maxKvBlocks: number;
}

/** What the route handlers share: one per server. */
export interface ServeContext {
  readonly scheduler: Scheduler;
  readonly adapters: AdapterRegistry;
  readonly tokenizer: PreTrainedTokenizer;
  readonly metrics: Metrics;
  /** Compiles structured-output grammars over the tokenizer's vocabulary. */
  readonly grammar: GrammarEngine;
  readonly limits: GenerationLimits;
  /** Token ids that end generation (the tokenizer's and generation_config's EOS ids). */
  readonly stopTokenIds: ReadonlySet<number>;
  readonly vocabSize: number;
  readonly baseModelName: string;
  /** Folder runtime adapter loads must stay inside; null disables POST /v1/adapters. */
  readonly adapterRoot: string | null;
  readonly apiKey: string | null;
  /** Whether the scheduler shares prompt prefixes (usage then reports prompt_tokens_details.cached_tokens). */
  readonly prefixCaching: boolean;
}
