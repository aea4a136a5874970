import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** RoPE frequency adjustments as transformers names them in rope_scaling / rope_parameters. */
export type RopeScaling =
  | { type: 'default' }
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

/** The fields of a Llama-family config.json that the model uses, in camelCase, plus the raw JSON. */
export interface LlamaConfig {
  readonly architecture: string;
  readonly modelType: string;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling;
  readonly maxPositionEmbeddings: number;
  readonly tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (Qwen2; Llama with attention_bias). */
  readonly qkvBias: boolean;
  /** o_proj carries a bias (Llama with attention_bias). */
  readonly oBias: boolean;
  readonly mlpBias: boolean;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: number[];
  readonly padTokenId: number | null;
  readonly raw: Readonly<Record<string, unknown>>;
}

export const SUPPORTED_ARCHITECTURES = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM'] as const;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function num(raw: Record<string, unknown>, key: string, path: string, fallback?: number): number {
  const v = raw[key];
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ConfigError(`${path} has no "${key}"; a Llama-family config.json needs it.`);
  }
  throw new ConfigError(`${path}: "${key}" must be a number, got ${JSON.stringify(v)}.`);
}

function idList(v: unknown): number[] {
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number');
  return [];
}

function parseRopeScaling(raw: Record<string, unknown>, path: string): { theta: number; scaling: RopeScaling } {
  // transformers 5 writes rope_parameters {rope_theta, rope_type, ...}; 4.x wrote rope_theta + rope_scaling.
  const params = (raw['rope_parameters'] ?? raw['rope_scaling'] ?? null) as Record<string, unknown> | null;
  const theta = typeof params?.['rope_theta'] === 'number' ? (params['rope_theta'] as number) : num(raw, 'rope_theta', path, 10000);
  const type = (params?.['rope_type'] ?? params?.['type'] ?? 'default') as string;
  switch (type) {
    case 'default':
      return { theta, scaling: { type: 'default' } };
    case 'linear':
      return { theta, scaling: { type: 'linear', factor: num(params!, 'factor', `${path} rope scaling`) } };
    case 'llama3':
      return {
        theta,
        scaling: {
          type: 'llama3',
          factor: num(params!, 'factor', `${path} rope scaling`),
          lowFreqFactor: num(params!, 'low_freq_factor', `${path} rope scaling`),
          highFreqFactor: num(params!, 'high_freq_factor', `${path} rope scaling`),
          originalMaxPositionEmbeddings: num(params!, 'original_max_position_embeddings', `${path} rope scaling`),
        },
      };
    default:
      throw new ConfigError(`${path}: rope type "${type}" is not supported; supported types are default, linear and llama3.`);
  }
}

export function parseLlamaConfig(raw: Record<string, unknown>, path = 'config.json'): LlamaConfig {
  const archs = raw['architectures'];
  const architecture = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : null;
  if (!architecture) throw new ConfigError(`${path} has no "architectures" entry; it must name one of ${SUPPORTED_ARCHITECTURES.join(', ')}.`);
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(architecture)) {
    throw new ConfigError(`${path}: architecture "${architecture}" is not supported; supported architectures are ${SUPPORTED_ARCHITECTURES.join(', ')}.`);
  }
  const hiddenSize = num(raw, 'hidden_size', path);
  const heads = num(raw, 'num_attention_heads', path);
  const kvHeads = num(raw, 'num_key_value_heads', path, heads);
  const headDim = num(raw, 'head_dim', path, hiddenSize / heads);
  if (heads % kvHeads !== 0) throw new ConfigError(`${path}: num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}.`);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw new ConfigError(`${path}: head_dim ${headDim} must be an even integer.`);
  const { theta, scaling } = parseRopeScaling(raw, path);
  const isQwen2 = architecture === 'Qwen2ForCausalLM';
  const attentionBias = raw['attention_bias'] === true;
  const layers = num(raw, 'num_hidden_layers', path);
  const vocab = num(raw, 'vocab_size', path);
  for (const [k, v] of [['hidden_size', hiddenSize], ['num_hidden_layers', layers], ['vocab_size', vocab], ['num_attention_heads', heads]] as const) {
    if (!Number.isInteger(v) || v <= 0) throw new ConfigError(`${path}: ${k} must be a positive integer, got ${v}.`);
  }
  return {
    architecture,
    modelType: typeof raw['model_type'] === 'string' ? (raw['model_type'] as string) : 'llama',
    hiddenSize,
    intermediateSize: num(raw, 'intermediate_size', path),
    numHiddenLayers: layers,
    numAttentionHeads: heads,
    numKeyValueHeads: kvHeads,
    headDim,
    vocabSize: vocab,
    rmsNormEps: num(raw, 'rms_norm_eps', path, 1e-6),
    ropeTheta: theta,
    ropeScaling: scaling,
    maxPositionEmbeddings: num(raw, 'max_position_embeddings', path, 4096),
    tieWordEmbeddings: raw['tie_word_embeddings'] === true,
    qkvBias: isQwen2 || attentionBias,
    oBias: !isQwen2 && attentionBias,
    mlpBias: raw['mlp_bias'] === true,
    bosTokenId: typeof raw['bos_token_id'] === 'number' ? (raw['bos_token_id'] as number) : null,
    eosTokenIds: idList(raw['eos_token_id']),
    padTokenId: typeof raw['pad_token_id'] === 'number' ? (raw['pad_token_id'] as number) : null,
    raw,
  };
}

export async function readJsonObject(path: string, what: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new ConfigError(`${path} does not exist; ${what}.`);
    throw e;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path} is not valid JSON (${(e as Error).message}); fix or re-download the file.`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${path} must hold a JSON object.`);
  return value as Record<string, unknown>;
}

export async function loadConfig(dir: string): Promise<LlamaConfig> {
  const path = join(dir, 'config.json');
  const raw = await readJsonObject(path, `a model folder needs config.json (is "${dir}" the right folder?)`);
  return parseLlamaConfig(raw, path);
}
