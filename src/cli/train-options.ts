import { DATA_FORMATS, DataError, parseColumnMapping, type ColumnMapping } from '../data/index.js';
import { LR_SCHEDULER_TYPES, OPTIM_NAMES, type LrSchedulerKwargs, type LrSchedulerType, type OptimName } from '../optim/index.js';
import { DEFAULT_TRAINING_ARGUMENTS as D } from '../train/training-args.js';
import { UsageError } from './errors.js';
import type { OptionSpecs, OptionValue, OptionValues } from './options.js';

/** Every option of `loraforge train`: flag names, config-file fields, types, allowed values and defaults. */
export const TRAIN_OPTIONS: OptionSpecs = {
  config: { kind: 'string', help: 'YAML or JSON file of these options (flags override it)' },
  model: { kind: 'string', help: 'base model folder or Hub id (default: the built-in example model)' },
  data: { kind: 'string', help: 'training data: a JSONL or parquet file, a folder of them, or a Hub dataset id org/name (default: the built-in example task)' },
  output: { kind: 'string', help: 'run folder: adapter, checkpoints, metrics, report (default: runs/run-<time>)' },
  'data-split': { kind: 'string', help: 'split of a --data folder or Hub dataset (files named as on the Hub: data/train-*.parquet, train.jsonl, *-train-*.jsonl; default train)' },
  'data-files': { kind: 'string', help: 'glob over the --data folder or Hub dataset choosing its files, in place of --data-split (e.g. data/en-*.parquet)' },
  'data-columns': { kind: 'string', help: 'columns that fill the fields the formats read, e.g. prompt=question,completion=answer' },
  'validation-data': { kind: 'string', help: 'held-out data for evaluation: a file, a folder or a Hub dataset id (its --validation-data-split)' },
  'validation-data-split': { kind: 'string', help: 'split of a --validation-data folder or Hub dataset (default validation)' },
  'validation-split': { kind: 'number', min: 0, max: 1, exclusiveMax: true, default: 0, help: 'fraction of --data held out when there is no --validation-data' },
  'data-format': { kind: 'enum', values: ['auto', ...DATA_FORMATS], default: 'auto', help: 'shape of the records (sharegpt: {"conversations": [{"from", "value"}]})' },
  'seq-len': { kind: 'number', integer: true, min: 2, default: 512, help: 'tokens per example; longer ones are truncated' },
  packing: { kind: 'boolean', default: false, help: 'bin-pack examples into rows of seq-len tokens, each attending only to itself with its own positions' },
  'train-on-inputs': { kind: 'boolean', default: false, help: 'take the loss on prompts and user turns too' },
  'chat-template-kwargs': { kind: 'json-object', help: 'JSON object of chat template variables, e.g. \'{"enable_thinking": false}\' for Qwen3' },
  'skip-malformed': { kind: 'boolean', default: false, help: 'skip malformed JSONL lines (counted) instead of stopping' },
  'max-line-mib': { kind: 'number', min: 0.001, max: 1024, default: 16, help: 'longest JSONL line read, in MiB; a longer line is malformed' },
  epochs: { kind: 'number', min: 0, default: D.epochs, help: 'passes over the data (ignored with --max-steps)' },
  'max-steps': { kind: 'number', integer: true, min: 1, help: 'optimizer steps to run' },
  'batch-size': { kind: 'number', integer: true, min: 1, default: D.batchSize, help: 'examples per micro-batch' },
  'grad-accum': { kind: 'number', integer: true, min: 1, default: D.gradAccum, help: 'micro-batches per optimizer step' },
  lr: { kind: 'number', min: 0, default: D.lr, help: 'peak learning rate' },
  'lr-scheduler': { kind: 'enum', values: LR_SCHEDULER_TYPES, default: D.lrScheduler, help: 'learning-rate schedule' },
  'warmup-steps': { kind: 'number', integer: true, min: 0, default: D.warmupSteps, help: 'linear warmup steps' },
  'weight-decay': { kind: 'number', min: 0, default: D.weightDecay, help: 'AdamW decoupled weight decay' },
  'max-grad-norm': { kind: 'number', min: 0, default: D.maxGradNorm, help: 'clip the gradient norm to this (0: off)' },
  'warmup-ratio': { kind: 'number', min: 0, max: 1, default: 0, help: 'warmup as a fraction of the steps, ceil(ratio * steps); used when --warmup-steps is 0' },
  'lr-scheduler-kwargs': { kind: 'json-object', help: 'JSON object of schedule settings, transformers\' lr_scheduler_kwargs, e.g. \'{"min_lr": 1e-5}\' or \'{"num_decay_steps": 20}\'' },
  optim: { kind: 'enum', values: OPTIM_NAMES, default: 'adamw_torch', help: 'optimizer, by Hugging Face\'s name' },
  r: { kind: 'number', integer: true, min: 1, default: 8, help: 'LoRA rank' },
  'lora-alpha': { kind: 'number', min: 0, default: 16, help: 'LoRA alpha (scaling alpha / r)' },
  'lora-dropout': { kind: 'number', min: 0, max: 1, exclusiveMax: true, default: 0.05, help: 'dropout on the adapter input' },
  'target-modules': { kind: 'string', default: 'all-linear', help: 'comma list of module names, a full-match regex, or all-linear' },
  'target-parameters': { kind: 'string', help: 'comma list of mixture-of-experts parameters adapted in place (PEFT target_parameters): experts.gate_up_proj,experts.down_proj; needs --lora-dropout 0' },
  'exclude-modules': { kind: 'string', help: 'comma list of module names, or a full-match regex, that LoRA leaves out' },
  'layers-to-transform': { kind: 'string', help: 'comma list of layer indices to adapt (e.g. 0,1,2); the others are left alone' },
  'layers-pattern': { kind: 'string', help: 'name of the layer container that --layers-to-transform indexes (e.g. layers); comma list allowed' },
  'rank-pattern': { kind: 'json-object', help: 'JSON object of rank per module regex, e.g. \'{"q_proj": 16}\'' },
  'alpha-pattern': { kind: 'json-object', help: 'JSON object of alpha per module regex, e.g. \'{"q_proj": 32}\'' },
  'init-lora-weights': { kind: 'string', default: 'true', help: 'adapter init: true, false, gaussian, pissa, pissa_niter_N, olora, orthogonal or loftq' },
  'modules-to-save': { kind: 'string', help: 'comma list of modules trained in full and saved with the adapter (e.g. lm_head)' },
  'trainable-token-indices': { kind: 'string', help: 'token ids whose embeddings train: a comma list, or a JSON object of module name to id list' },
  'loraplus-lr-ratio': { kind: 'number', min: 0, help: 'LoRA+: lora_B matrices train at lr times this (PEFT loraplus_lr_ratio)' },
  'use-rslora': { kind: 'boolean', default: false, help: 'scale by alpha / sqrt(r)' },
  'use-dora': { kind: 'boolean', default: false, help: 'weight-decomposed LoRA (DoRA)' },
  qlora: { kind: 'boolean', default: false, help: 'quantize the base model to 4-bit NF4 on load (QLoRA)' },
  'gradient-checkpointing': { kind: 'boolean', default: false, help: 'recompute layer activations in backward to save memory' },
  seed: { kind: 'number', integer: true, min: 0, default: D.seed, help: 'seed for adapter init, dropout and shuffling' },
  device: { kind: 'string', default: 'cpu', help: 'cpu, cuda or cuda:N' },
  dtype: { kind: 'enum', values: ['auto', 'float32', 'bfloat16', 'float16'], default: 'float32', help: 'dtype of the base weights' },
  'logging-steps': { kind: 'number', integer: true, min: 1, default: 10, help: 'log loss every this many steps' },
  'eval-steps': { kind: 'number', integer: true, min: 0, default: 0, help: 'evaluate every this many steps (0: at the end only)' },
  'save-steps': { kind: 'number', integer: true, min: 0, default: 100, help: 'checkpoint every this many steps (0: never)' },
  'save-total-limit': { kind: 'number', integer: true, min: 0, default: 2, help: 'keep this many checkpoints (0: all)' },
  'eval-strategy': { kind: 'enum', values: ['no', 'steps', 'epoch'], help: 'when to evaluate (default: steps with --eval-steps, else at the end only)' },
  'save-strategy': { kind: 'enum', values: ['no', 'steps', 'epoch'], help: 'when to checkpoint (default: steps with --save-steps, else no)' },
  'metric-for-best-model': { kind: 'string', help: 'evaluation metric that picks the best checkpoint (default loss with --load-best-model-at-end or early stopping)' },
  'greater-is-better': { kind: 'boolean', help: 'a larger metric is better (default: false for metrics ending in loss)' },
  'load-best-model-at-end': { kind: 'boolean', default: false, help: 'the final adapter is the best checkpoint\'s' },
  'early-stopping-patience': { kind: 'number', integer: true, min: 1, help: 'stop after this many evaluations without improvement' },
  'early-stopping-threshold': { kind: 'number', min: 0, default: 0, help: 'an improvement must exceed this to count' },
  'report-to': { kind: 'enum', values: ['none', 'tensorboard'], default: 'none', help: 'also log to TensorBoard event files under <output>/runs/' },
  samples: { kind: 'number', integer: true, min: 0, default: 3, help: 'held-out prompts shown before and after training' },
  resume: { kind: 'flag-or-string', help: 'continue from the latest checkpoint in --output, or from the checkpoint folder given' },
  overwrite: { kind: 'boolean', default: false, help: 'replace a run already in --output' },
};

/** The validated options of one `train` invocation. */
export interface TrainCommandOptions {
  model: string | null;
  data: string | null;
  output: string | null;
  /** Split of a --data folder or Hub dataset; null: train. */
  dataSplit: string | null;
  /** Glob choosing the --data folder's or Hub dataset's files; null: by --data-split. */
  dataFiles: string | null;
  dataColumns: ColumnMapping | null;
  validationData: string | null;
  /** Split of a --validation-data folder or Hub dataset; null: validation. */
  validationDataSplit: string | null;
  validationSplit: number;
  dataFormat: 'auto' | (typeof DATA_FORMATS)[number];
  seqLen: number;
  packing: boolean;
  trainOnInputs: boolean;
  /** Variables the chat template sees besides the messages (transformers' apply_chat_template kwargs). */
  chatTemplateKwargs: Record<string, unknown> | null;
  skipMalformed: boolean;
  /** Longest JSONL line, in bytes. */
  maxLineBytes: number;
  epochs: number;
  maxSteps: number | null;
  batchSize: number;
  gradAccum: number;
  lr: number;
  lrScheduler: LrSchedulerType;
  warmupSteps: number;
  weightDecay: number;
  maxGradNorm: number;
  warmupRatio: number;
  lrSchedulerKwargs: LrSchedulerKwargs | null;
  optim: OptimName;
  r: number;
  loraAlpha: number;
  loraDropout: number;
  targetModules: string | string[];
  targetParameters: string[] | null;
  excludeModules: string | string[] | null;
  layersToTransform: number[] | null;
  layersPattern: string | string[] | null;
  rankPattern: Record<string, number> | null;
  alphaPattern: Record<string, number> | null;
  /** Passed through to the LoRA config as PEFT spells it (true, false or a method name). */
  initLoraWeights: boolean | string;
  modulesToSave: string[] | null;
  /** PEFT's trainable_token_indices: ids of the input embedding, or ids per embedding module. */
  trainableTokenIndices: number[] | Record<string, number[]> | null;
  loraplusLrRatio: number | null;
  useRslora: boolean;
  useDora: boolean;
  qlora: boolean;
  gradientCheckpointing: boolean;
  seed: number;
  device: string;
  dtype: 'auto' | 'float32' | 'bfloat16' | 'float16';
  loggingSteps: number;
  evalSteps: number;
  saveSteps: number;
  saveTotalLimit: number;
  evalStrategy: 'no' | 'steps' | 'epoch' | null;
  saveStrategy: 'no' | 'steps' | 'epoch' | null;
  metricForBestModel: string | null;
  greaterIsBetter: boolean | null;
  loadBestModelAtEnd: boolean;
  earlyStoppingPatience: number | null;
  earlyStoppingThreshold: number;
  reportTo: 'none' | 'tensorboard';
  samples: number;
  /** true: the latest checkpoint of the output folder; a string: that checkpoint folder. */
  resume: string | true | null;
  overwrite: boolean;
  /** Which options the user set (flags or config file). */
  explicit: ReadonlySet<string>;
  /** The resolved options by flag name, as the run folder remembers them and the report shows them. */
  values: OptionValues;
}

/** --target-modules: "all-linear", a regex (kept as one string, as PEFT does), or a comma list of names. */
export function parseTargetModules(text: string): string | string[] {
  if (text === 'all-linear' || /[\\^$*+?()[\]{}|]/.test(text)) return text;
  const names = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new UsageError('--target-modules must name at least one module (e.g. q_proj,v_proj), be a regex, or be all-linear.');
  return names;
}

export function toTrainCommandOptions(v: OptionValues, explicit: ReadonlySet<string>): TrainCommandOptions {
  const str = (k: string) => (v[k] === undefined ? null : String(v[k]));
  const num = (k: string) => v[k] as number;
  const bool = (k: string) => v[k] === true;
  if (v['validation-data'] !== undefined && num('validation-split') > 0) {
    throw new UsageError('--validation-data and --validation-split are alternatives; give one of them.');
  }
  if (v['validation-data-split'] !== undefined && v['validation-data'] === undefined) {
    throw new UsageError('--validation-data-split names a split of --validation-data, which is not given; add --validation-data (a folder or Hub dataset) or drop --validation-data-split.');
  }
  if (v['resume'] !== undefined && bool('overwrite')) throw new UsageError('--resume continues the run in --output and --overwrite replaces it; give one of them.');
  const device = String(v['device']);
  if (!/^(cpu|cuda(:\d+)?)$/.test(device)) throw new UsageError(`--device must be cpu, cuda or cuda:N; got "${device}".`);
  return {
    model: str('model'),
    data: str('data'),
    output: str('output'),
    dataSplit: str('data-split'),
    dataFiles: str('data-files'),
    dataColumns: v['data-columns'] === undefined ? null : parseDataColumns(String(v['data-columns'])),
    validationData: str('validation-data'),
    validationDataSplit: str('validation-data-split'),
    validationSplit: num('validation-split'),
    dataFormat: v['data-format'] as TrainCommandOptions['dataFormat'],
    seqLen: num('seq-len'),
    packing: bool('packing'),
    trainOnInputs: bool('train-on-inputs'),
    chatTemplateKwargs: parseTemplateKwargs(v['chat-template-kwargs']),
    skipMalformed: bool('skip-malformed'),
    maxLineBytes: Math.round(num('max-line-mib') * 2 ** 20),
    epochs: num('epochs'),
    maxSteps: v['max-steps'] === undefined ? null : num('max-steps'),
    batchSize: num('batch-size'),
    gradAccum: num('grad-accum'),
    lr: num('lr'),
    lrScheduler: v['lr-scheduler'] as LrSchedulerType,
    warmupSteps: num('warmup-steps'),
    weightDecay: num('weight-decay'),
    maxGradNorm: num('max-grad-norm'),
    warmupRatio: num('warmup-ratio'),
    lrSchedulerKwargs: parseSchedulerKwargs(v['lr-scheduler-kwargs']),
    optim: v['optim'] as OptimName,
    r: num('r'),
    loraAlpha: num('lora-alpha'),
    loraDropout: num('lora-dropout'),
    targetModules: parseTargetModules(String(v['target-modules'])),
    targetParameters: v['target-parameters'] === undefined ? null : (parseModuleList(String(v['target-parameters']), '--target-parameters', false) as string[]),
    excludeModules: v['exclude-modules'] === undefined ? null : parseModuleList(String(v['exclude-modules']), '--exclude-modules', true),
    layersToTransform: parseLayers(v['layers-to-transform']),
    layersPattern: v['layers-pattern'] === undefined ? null : parseLayersPattern(String(v['layers-pattern'])),
    rankPattern: parsePattern(v['rank-pattern'], '--rank-pattern', true),
    alphaPattern: parsePattern(v['alpha-pattern'], '--alpha-pattern', false),
    initLoraWeights: parseInitLoraWeights(String(v['init-lora-weights'])),
    modulesToSave: v['modules-to-save'] === undefined ? null : (parseModuleList(String(v['modules-to-save']), '--modules-to-save', false) as string[]),
    trainableTokenIndices: parseTokenIndices(v['trainable-token-indices']),
    loraplusLrRatio: parseLoraplusRatio(v['loraplus-lr-ratio']),
    useRslora: bool('use-rslora'),
    useDora: bool('use-dora'),
    qlora: bool('qlora'),
    gradientCheckpointing: bool('gradient-checkpointing'),
    seed: num('seed'),
    device,
    dtype: v['dtype'] as TrainCommandOptions['dtype'],
    loggingSteps: num('logging-steps'),
    evalSteps: num('eval-steps'),
    saveSteps: num('save-steps'),
    saveTotalLimit: num('save-total-limit'),
    evalStrategy: (v['eval-strategy'] as TrainCommandOptions['evalStrategy'] | undefined) ?? null,
    saveStrategy: (v['save-strategy'] as TrainCommandOptions['saveStrategy'] | undefined) ?? null,
    metricForBestModel: str('metric-for-best-model'),
    greaterIsBetter: v['greater-is-better'] === undefined ? null : bool('greater-is-better'),
    loadBestModelAtEnd: bool('load-best-model-at-end'),
    earlyStoppingPatience: v['early-stopping-patience'] === undefined ? null : num('early-stopping-patience'),
    earlyStoppingThreshold: num('early-stopping-threshold'),
    reportTo: v['report-to'] as TrainCommandOptions['reportTo'],
    samples: num('samples'),
    resume: v['resume'] === undefined ? null : v['resume'] === true ? true : String(v['resume']),
    overwrite: bool('overwrite'),
    explicit,
    values: v,
  };
}

/** --data-columns: field=column pairs; a bad pair is a usage error. */
function parseDataColumns(text: string): ColumnMapping {
  try {
    return parseColumnMapping(text);
  } catch (err) {
    if (err instanceof DataError) throw new UsageError(err.message);
    throw err;
  }
}

/** A comma list of module names; with `regexAllowed`, text with regex characters is kept whole (PEFT's str form). */
function parseModuleList(text: string, flag: string, regexAllowed: boolean): string | string[] {
  if (regexAllowed && /[\\^$*+?()[\]{}|]/.test(text)) return text;
  const names = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0 || names.some((n) => !/^[\w.-]+$/.test(n))) throw new UsageError(`${flag} must be a comma list of module names (e.g. lm_head${regexAllowed ? ', or a regex' : ''}); got "${text}".`);
  return names;
}

/** --layers-to-transform: layer indices, "0,1,2" (a config file may give a number or a list). */
function parseLayers(v: unknown): number[] | null {
  if (v === undefined || v === null) return null;
  const parts = typeof v === 'number' ? [String(v)] : String(v).split(',').map((s) => s.trim());
  if (parts.length === 0 || !parts.every((p) => /^\d+$/.test(p))) throw new UsageError(`--layers-to-transform must be a comma list of non-negative layer indices (e.g. 0,1,2); got "${String(v)}".`);
  return parts.map(Number);
}

function parseLayersPattern(text: string): string | string[] {
  const names = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new UsageError(`--layers-pattern must name the layer container (e.g. layers); got "${text}".`);
  return names.length === 1 ? names[0]! : names;
}

/** --rank-pattern / --alpha-pattern: JSON text (a config mapping arrives as JSON too) of module regex to number (positive integers for ranks). */
function parsePattern(v: OptionValue | undefined, flag: string, integers: boolean): Record<string, number> | null {
  if (v === undefined) return null;
  const text = String(v);
  const example = integers ? '\'{"q_proj": 16}\'' : '\'{"q_proj": 32}\'';
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`${flag} must be a JSON object of module pattern to ${integers ? 'rank' : 'alpha'}, such as ${example}; got ${text}.`);
  }
  const ok = !!value && typeof value === 'object' && !Array.isArray(value) && Object.values(value).every((n) => typeof n === 'number' && Number.isFinite(n) && (!integers || (Number.isInteger(n) && n > 0)));
  if (!ok) throw new UsageError(`${flag} must be a JSON object of module pattern to ${integers ? 'a positive integer rank' : 'a number'}, such as ${example}; got ${text}.`);
  return value as Record<string, number>;
}

/** PEFT's init_lora_weights values this flag passes through (the methods themselves live in src/peft). */
const INIT_LORA_WEIGHTS = /^(true|false|gaussian|pissa|pissa_niter_[1-9]\d*|olora|orthogonal|loftq)$/;

function parseInitLoraWeights(text: string): boolean | string {
  if (!INIT_LORA_WEIGHTS.test(text)) throw new UsageError(`--init-lora-weights must be true, false, gaussian, pissa, pissa_niter_N (N >= 1), olora, orthogonal or loftq; got "${text}".`);
  return text === 'true' ? true : text === 'false' ? false : text;
}

/** --trainable-token-indices: "1,2,3" (ids of the input embedding) or a JSON object {"embed_tokens": [1, 2]}. */
function parseTokenIndices(v: unknown): number[] | Record<string, number[]> | null {
  if (v === undefined || v === null) return null;
  const text = String(v).trim();
  const fail = (): never => {
    throw new UsageError(`--trainable-token-indices must be a comma list of token ids (e.g. 1,2,3) or a JSON object of module name to id list, such as '{"embed_tokens": [1, 2]}'; got ${text}.`);
  };
  const ids = (list: unknown): number[] => (Array.isArray(list) && list.length > 0 && list.every((n) => Number.isInteger(n) && n >= 0) ? (list as number[]) : fail());
  if (text.startsWith('{') || text.startsWith('[')) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return fail();
    }
    if (Array.isArray(value)) return ids(value);
    if (!value || typeof value !== 'object' || Object.keys(value).length === 0) return fail();
    return Object.fromEntries(Object.entries(value).map(([k, list]) => [k, ids(list)]));
  }
  const parts = text.split(',').map((s) => s.trim());
  return parts.every((p) => /^\d+$/.test(p)) ? parts.map(Number) : fail();
}

function parseLoraplusRatio(v: unknown): number | null {
  if (v === undefined || v === null) return null;
  if (!(typeof v === 'number' && v > 0)) throw new UsageError(`--loraplus-lr-ratio must be a positive number (PEFT suggests >= 1, e.g. 16); got ${String(v)}.`);
  return v;
}

/**
 * A flag whose value is JSON text of an object (a config mapping arrives as JSON too), or null when absent; anything
 * else is refused naming the flag and an example.
 */
function parseJsonObjectFlag(v: OptionValue | undefined, flag: string, example: string): Record<string, unknown> | null {
  if (v === undefined) return null;
  const text = String(v);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new UsageError(`--${flag} must be a JSON object such as '${example}'; got ${text}.`);
  return value as Record<string, unknown>;
}

/** --chat-template-kwargs: the chat template's extra variables. */
function parseTemplateKwargs(v: OptionValue | undefined): Record<string, unknown> | null {
  return parseJsonObjectFlag(v, 'chat-template-kwargs', '{"enable_thinking": false}');
}

/** --lr-scheduler-kwargs: the schedule checks the keys. */
function parseSchedulerKwargs(v: OptionValue | undefined): LrSchedulerKwargs | null {
  return parseJsonObjectFlag(v, 'lr-scheduler-kwargs', '{"min_lr": 1e-5}') as LrSchedulerKwargs | null;
}
