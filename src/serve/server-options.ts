import type { DType } from '../tensor/dtype.js';
import type { CausalLM } from '../models/causal-lm.js';
import type { AdapterBackend } from './adapter-backend.js';

/** An adapter served from start-up (operator-given, so not confined to the adapter root). */
export interface AdapterSpec {
  readonly name: string;
  readonly path: string;
}

export interface ServerOptions {
  /** Model folder (config.json, weights, tokenizer files). */
  readonly modelDir: string;
  /** Name clients use for the base model; default: the folder's name. */
  readonly modelName?: string;
  readonly adapters?: readonly AdapterSpec[];
  /** Default 127.0.0.1 (loopback only). */
  readonly host?: string;
  /** Default 8000; 0 picks a free port. */
  readonly port?: number;
  /**
   * Host names (no port) that Host headers may name besides localhost, 127.0.0.1 and [::1]. A server on loopback
   * always checks Host (DNS rebinding); one on another address checks it only when this is non-empty.
   */
  readonly allowedHosts?: readonly string[];
  /**
   * Origins (scheme://host[:port], or '*' for any) whose browser pages may call the server: their preflights are
   * answered and every response to them carries Access-Control-Allow-Origin. Default none: no CORS headers.
   */
  readonly corsOrigins?: readonly string[];
  /** When set, every /v1 route needs "Authorization: Bearer <apiKey>". */
  readonly apiKey?: string | null;
  /** Folder that runtime adapter loads must stay inside (it must exist); unset disables POST /v1/adapters. */
  readonly adapterRoot?: string | null;
  /**
   * A request whose `model` names no served model but a folder directly under adapterRoot (which it needs) loads
   * that folder as the adapter of that name first, once however many requests name it (LoRAX's habit). Default false.
   */
  readonly loadAdaptersOnDemand?: boolean;
  /** Adapters loaded at once (LRU beyond that). Default 16. */
  readonly maxAdapters?: number;
  /** Sequences per decode step. Default 32. */
  readonly maxBatch?: number;
  /** Requests waiting for a batch slot before 429. Default 256. */
  readonly maxQueue?: number;
  /**
   * Automatic prefix caching: requests whose prompts start with the same full KV blocks (16 tokens each) through
   * the same adapter share those blocks instead of computing them again; usage reports
   * prompt_tokens_details.cached_tokens. Prefills then run under the batch-invariant matmuls and paged attention, so
   * a cached prefix gives the same tokens as a cold one. Default false.
   */
  readonly prefixCaching?: boolean;
  /** Blocks (16 positions each) the KV pool may hold; a request waits while they are in use. Default: no limit. */
  readonly maxKvBlocks?: number;
  /** Largest max_tokens a request may ask for. Default 4096 (and never beyond the model's context). */
  readonly maxTokens?: number;
  /** Per-request limit from queueing to the last token, in milliseconds. Default 600000. */
  readonly requestTimeoutMs?: number;
  /** Largest request body in bytes. Default 1 MiB. */
  readonly bodyLimit?: number;
  readonly device?: string;
  readonly dtype?: DType | 'auto';
  /**
   * Quantize the base model to NF4 on load, as `train --qlora` does (src/quant's loadIn4bit): the decoder
   * projections and a mixture-of-experts model's experts, one NF4 weight per expert matrix; compute in bfloat16
   * unless dtype says otherwise. A bnb-4bit checkpoint is served as it is stored either way. Default false.
   */
  readonly qlora?: boolean;
  /**
   * dtype adapters are stored and computed in: 'model' (default) takes the base weights' dtype, as vLLM serves LoRA,
   * which halves the bytes a bfloat16 decode step reads per adapter; 'float32' computes them as PEFT does.
   */
  readonly adapterDtype?: DType | 'model';
  /** Log every request (pino JSON lines on stdout); errors are logged either way. Default false. */
  readonly logger?: boolean;
  /** Where adapters are attached; default: PEFT LoRA layers on the loaded model. */
  readonly adapterBackend?: (model: CausalLM, options: { adapterDtype: DType }) => AdapterBackend;
}

export const SERVER_DEFAULTS = {
  host: '127.0.0.1',
  port: 8000,
  maxAdapters: 16,
  maxBatch: 32,
  maxQueue: 256,
  maxTokens: 4096,
  requestTimeoutMs: 600_000,
  bodyLimit: 1024 * 1024,
} as const;
