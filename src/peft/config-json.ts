import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseJsonText } from '../io/json-text.js';
import { fromParsedJson, PythonFloat, pythonJsonDumps, type PythonJsonValue } from '../io/python-json.js';
import { initKind, resolveLoraConfig, type InitLoraWeights, type LoftqConfig, type LoraBias, type ResolvedLoraConfig, type TargetModules, type TrainableTokenIndices } from './config.js';
import { PeftError } from './errors.js';

export const ADAPTER_CONFIG_NAME = 'adapter_config.json';

/** The PEFT release whose adapter_config.json layout this file reproduces (written when a config has no peft_version). */
const PEFT_FORMAT_VERSION = '0.21.0';

/**
 * Fields PEFT 0.21 writes that loraforge does not interpret, with PEFT's defaults (written for new adapters; a loaded
 * config's own values win). Those in UNSUPPORTED_WHEN_SET change the computation, so a config that turns them on is
 * refused.
 */
const PASSTHROUGH_DEFAULTS: Readonly<Record<string, unknown>> = {
  alora_invocation_tokens: null,
  arrow_config: null,
  auto_mapping: null,
  corda_config: null,
  ensure_weight_tying: false,
  eva_config: null,
  fan_in_fan_out: false,
  kasa_config: null,
  layer_replication: null,
  loftq_config: {},
  lora_ga_config: null,
  megatron_config: null,
  megatron_core: 'megatron.core',
  monteclora_config: null,
  peft_version: PEFT_FORMAT_VERSION,
  qalora_group_size: 16,
  trainable_token_indices: null,
  use_bdlora: null,
  use_qalora: false,
  velora_config: null,
};

const UNSUPPORTED_WHEN_SET = [
  'alora_invocation_tokens',
  'arrow_config',
  'fan_in_fan_out',
  'kasa_config',
  'layer_replication',
  'monteclora_config',
  'use_bdlora',
  'use_qalora',
  'velora_config',
];

/** Fields this file reads into a ResolvedLoraConfig; every other field of a loaded config is passed through. */
const INTERPRETED_FIELDS = new Set([
  'alpha_pattern',
  'base_model_name_or_path',
  'bias',
  'exclude_modules',
  'inference_mode',
  'init_lora_weights',
  'layers_pattern',
  'layers_to_transform',
  'lora_alpha',
  'lora_bias',
  'lora_dropout',
  'modules_to_save',
  'peft_type',
  'r',
  'rank_pattern',
  'revision',
  'target_modules',
  'target_parameters',
  'task_type',
  'trainable_token_indices',
  'use_dora',
  'use_rslora',
]);

/** LoraConfig's runtime_config: accepted on load, never written (PEFT's to_dict pops it). */
const RUNTIME_FIELD = 'runtime_config';

/**
 * PEFT's forward compatibility (PeftConfig.from_pretrained, _check_and_remove_unused_kwargs): keys LoraConfig does not
 * know are dropped, with this warning, and so are not written back.
 */
function warnUnknownFields(keys: readonly string[]): void {
  const names = `[${[...keys].sort().map((k) => `'${k}'`).join(', ')}]`;
  console.warn(
    `Unexpected keyword arguments ${names} for class LoraConfig, these are ignored. This probably means that you're loading a configuration file that was saved using a higher version of the library and additional parameters have been introduced since. It is highly recommended to upgrade the PEFT version before continuing (e.g. by running \`pip install -U peft\`).`,
  );
}

/** adapter_config.json text exactly as PEFT writes it: json.dumps(indent=2, sort_keys=True), no trailing newline. */
export function loraConfigToJson(c: ResolvedLoraConfig, options: { inferenceMode: boolean }): string {
  const fields: Record<string, PythonJsonValue> = {};
  for (const [key, value] of Object.entries({ ...PASSTHROUGH_DEFAULTS, ...c.passthrough })) fields[key] = fromParsedJson(value);
  Object.assign(fields, {
    alpha_pattern: numberMap(c.alphaPattern),
    base_model_name_or_path: c.baseModelNameOrPath,
    bias: c.bias,
    exclude_modules: targetsJson(c.excludeModules),
    inference_mode: options.inferenceMode,
    init_lora_weights: c.initLoraWeights,
    layers_pattern: c.layersPattern === null ? null : typeof c.layersPattern === 'string' ? c.layersPattern : [...c.layersPattern],
    layers_to_transform: c.layersToTransform === null ? null : typeof c.layersToTransform === 'number' ? c.layersToTransform : [...c.layersToTransform],
    lora_alpha: fromParsedJson(c.loraAlpha),
    lora_bias: c.loraBias,
    lora_dropout: new PythonFloat(c.loraDropout),
    modules_to_save: c.modulesToSave === null ? null : [...c.modulesToSave],
    peft_type: 'LORA',
    r: c.r,
    rank_pattern: numberMap(c.rankPattern),
    revision: c.revision,
    target_modules: targetsJson(c.targetModules),
    target_parameters: c.targetParameters === null ? null : [...c.targetParameters],
    task_type: c.taskType,
    trainable_token_indices: tokenIndicesJson(c.trainableTokenIndices),
    use_dora: c.useDora,
    use_rslora: c.useRslora,
  } satisfies Record<string, PythonJsonValue>);
  // PEFT stores vars(LoftQConfig) when init_lora_weights is "loftq"; otherwise loftq_config stays as loaded (or {}).
  if (c.loftqConfig) fields['loftq_config'] = { loftq_bits: c.loftqConfig.loftqBits, loftq_iter: c.loftqConfig.loftqIter };
  return pythonJsonDumps(fields, 2);
}

/** Reads `<dir>/adapter_config.json`, refusing a missing file, another PEFT method, or a LoRA variant not supported here. */
export async function readAdapterConfig(dir: string): Promise<ResolvedLoraConfig> {
  const path = join(dir, ADAPTER_CONFIG_NAME);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new PeftError(`${dir} has no ${ADAPTER_CONFIG_NAME}; pass the folder that PEFT's save_pretrained (or savePretrained) wrote.`);
    }
    throw err;
  }
  return parseAdapterConfig(text, path);
}

/** The LoraConfig field names resolveLoraConfig's messages use, each written snake_case in adapter_config.json. */
const CONFIG_FIELD = /\b(targetParameters|loraAlpha|loraDropout|initLoraWeights|loftqConfig|loftqBits|loftqIter|rankPattern|alphaPattern|layersToTransform|layersPattern|targetModules|trainableTokenIndices|taskType|loraBias|useDora)\b/g;

export function parseAdapterConfig(text: string, path: string): ResolvedLoraConfig {
  const parsed = parseJsonText(text, path, 'save the adapter again');
  if ('problem' in parsed) throw new PeftError(parsed.problem);
  const json = parsed.value;
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new PeftError(`${path} does not hold a JSON object; save the adapter again.`);
  const raw = json as Record<string, unknown>;
  if (raw['peft_type'] !== 'LORA') {
    throw new PeftError(`${path} has peft_type ${JSON.stringify(raw['peft_type'] ?? null)}, but loraforge loads LoRA adapters only (peft_type "LORA").`);
  }
  for (const key of UNSUPPORTED_WHEN_SET) {
    if (!isUnset(raw[key])) {
      throw new PeftError(`${path} sets "${key}" to ${JSON.stringify(raw[key])}, a LoRA variant loraforge does not support; use an adapter without it.`);
    }
  }
  const field = new FieldReader(raw, path);
  const passthrough: Record<string, unknown> = {};
  const unknown: string[] = [];
  for (const [key, value] of Object.entries(raw)) {
    if (INTERPRETED_FIELDS.has(key) || key === RUNTIME_FIELD) continue;
    if (key === 'loftq_config' && raw['init_lora_weights'] === 'loftq') continue; // read by field.loftq()
    if (key in PASSTHROUGH_DEFAULTS) passthrough[key] = value;
    else unknown.push(key);
  }
  if (unknown.length > 0) warnUnknownFields(unknown);
  try {
    return resolveConfigFields(field, passthrough);
  } catch (err) {
    // resolveLoraConfig's checks speak of LoraConfig's fields; say which file holds the bad value, by its JSON names.
    if (err instanceof PeftError) throw new PeftError(`${path}: ${err.message.replace(CONFIG_FIELD, (name) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`))}`);
    throw err;
  }
}

function resolveConfigFields(field: FieldReader, passthrough: Record<string, unknown>): ResolvedLoraConfig {
  return resolveLoraConfig(
    {
      r: field.number('r', 8),
      loraAlpha: field.number('lora_alpha', 8),
      loraDropout: field.number('lora_dropout', 0),
      targetModules: field.targets('target_modules'),
      targetParameters: field.stringList('target_parameters'),
      excludeModules: field.targets('exclude_modules'),
      bias: field.string('bias', 'none') as LoraBias,
      useRslora: field.boolean('use_rslora'),
      useDora: field.boolean('use_dora'),
      loraBias: field.boolean('lora_bias'),
      initLoraWeights: field.initWeights(),
      loftqConfig: field.loftq(),
      layersToTransform: field.layers(),
      layersPattern: field.targets('layers_pattern'),
      rankPattern: field.numberMap('rank_pattern'),
      alphaPattern: field.numberMap('alpha_pattern'),
      modulesToSave: field.stringList('modules_to_save'),
      trainableTokenIndices: field.tokenIndices(),
      taskType: field.nullableString('task_type'),
      baseModelNameOrPath: field.nullableString('base_model_name_or_path'),
      revision: field.nullableString('revision'),
      inferenceMode: field.boolean('inference_mode'),
    },
    passthrough,
  );
}

/** Typed access to adapter_config.json fields; a wrong type names the field and the file. */
class FieldReader {
  constructor(
    private readonly raw: Record<string, unknown>,
    private readonly path: string,
  ) {}

  private fail(key: string, expected: string): never {
    throw new PeftError(`${this.path}: "${key}" must be ${expected}, got ${JSON.stringify(this.raw[key])}; fix the file or save the adapter again.`);
  }
  private get(key: string): unknown {
    return this.raw[key] ?? null;
  }
  number(key: string, fallback: number): number {
    const v = this.get(key);
    if (v === null) return fallback;
    return typeof v === 'number' ? v : this.fail(key, 'a number');
  }
  boolean(key: string): boolean {
    const v = this.get(key);
    if (v === null) return false;
    return typeof v === 'boolean' ? v : this.fail(key, 'true or false');
  }
  string(key: string, fallback: string): string {
    const v = this.get(key);
    if (v === null) return fallback;
    return typeof v === 'string' ? v : this.fail(key, 'a string');
  }
  nullableString(key: string): string | null {
    const v = this.get(key);
    return v === null || typeof v === 'string' ? v : this.fail(key, 'a string or null');
  }
  stringList(key: string): string[] | null {
    const v = this.get(key);
    if (v === null) return null;
    return Array.isArray(v) && v.every((s) => typeof s === 'string') ? (v as string[]) : this.fail(key, 'a list of strings or null');
  }
  targets(key: string): TargetModules | null {
    const v = this.get(key);
    return typeof v === 'string' ? v : this.stringList(key);
  }
  numberMap(key: string): Record<string, number> {
    const v = this.get(key);
    if (v === null) return {};
    const ok = typeof v === 'object' && !Array.isArray(v) && Object.values(v as object).every((n) => typeof n === 'number');
    return ok ? (v as Record<string, number>) : this.fail(key, 'an object of numbers');
  }
  layers(): number | number[] | null {
    const v = this.get('layers_to_transform');
    if (v === null || typeof v === 'number') return v;
    return Array.isArray(v) && v.every((n) => typeof n === 'number') ? (v as number[]) : this.fail('layers_to_transform', 'a layer index, a list of them, or null');
  }
  tokenIndices(): TrainableTokenIndices | null {
    const key = 'trainable_token_indices';
    const v = this.get(key);
    const ids = (x: unknown) => Array.isArray(x) && x.every((n) => Number.isInteger(n));
    if (v === null || ids(v)) return v as number[] | null;
    if (typeof v === 'object' && !Array.isArray(v) && Object.values(v as object).every(ids)) return v as Record<string, number[]>;
    return this.fail(key, 'a list of token ids, an object of such lists, or null');
  }
  /** loftq_config {loftq_bits, loftq_iter} when init_lora_weights is "loftq" (an empty one counts as missing, as PEFT's `not loftq_config`). */
  loftq(): LoftqConfig | null {
    const v = this.get('loftq_config');
    if (this.raw['init_lora_weights'] !== 'loftq' || v === null) return null;
    if (typeof v !== 'object' || Array.isArray(v)) return this.fail('loftq_config', 'an object such as {"loftq_bits": 4, "loftq_iter": 1}');
    const o = v as Record<string, unknown>;
    if (Object.keys(o).length === 0) return null;
    const num = (k: string) => (o[k] === undefined || typeof o[k] === 'number' ? (o[k] as number | undefined) : this.fail('loftq_config', `an object whose "${k}" is a number`));
    return { loftqBits: num('loftq_bits'), loftqIter: num('loftq_iter') };
  }
  initWeights(): InitLoraWeights {
    const v = this.get('init_lora_weights');
    if (v === null) return true;
    if (initKind(v) !== null) return v as InitLoraWeights;
    throw new PeftError(`${this.path}: init_lora_weights ${JSON.stringify(v)} is not supported; loraforge knows true, false, "gaussian", "pissa", "pissa_niter_<iterations>", "olora", "orthogonal" and "loftq".`);
  }
}

function targetsJson(t: TargetModules | null): PythonJsonValue {
  return t === null ? null : typeof t === 'string' ? t : [...t];
}

function tokenIndicesJson(t: TrainableTokenIndices | null): PythonJsonValue {
  if (t === null) return null;
  if (Array.isArray(t)) return [...(t as readonly number[])];
  return Object.fromEntries(Object.entries(t as Readonly<Record<string, readonly number[]>>).map(([k, v]) => [k, [...v]]));
}

function numberMap(m: Readonly<Record<string, number>>): PythonJsonValue {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, fromParsedJson(v)]));
}

/** PEFT leaves an optional feature off with null, false, [] or {}. */
function isUnset(v: unknown): boolean {
  if (v === undefined || v === null || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === 'object' && Object.keys(v as object).length === 0;
}
