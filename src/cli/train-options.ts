import { DATA_FORMATS } from '../data/index.js';
import { LR_SCHEDULER_TYPES, type LrSchedulerType } from '../optim/index.js';
import { DEFAULT_TRAINING_ARGUMENTS as D } from '../train/training-args.js';
import { UsageError } from './errors.js';
import type { OptionSpecs, OptionValues } from './options.js';

/** Every option of `loraforge train`: flag names, config-file fields, types, allowed values and defaults. */
export const TRAIN_OPTIONS: OptionSpecs = {
  config: { kind: 'string', help: 'YAML or JSON file of these options (flags override it)' },
  model: { kind: 'string', help: 'base model folder or Hub id (default: the built-in example model)' },
  data: { kind: 'string', help: 'training data, JSONL (default: the built-in example task)' },
  output: { kind: 'string', help: 'run folder: adapter, checkpoints, metrics, report (default: runs/run-<time>)' },
  'validation-data': { kind: 'string', help: 'held-out JSONL file for evaluation' },
  'validation-split': { kind: 'number', min: 0, max: 1, exclusiveMax: true, default: 0, help: 'fraction of --data held out when there is no --validation-data' },
  'data-format': { kind: 'enum', values: ['auto', ...DATA_FORMATS], default: 'auto', help: 'shape of the JSONL records' },
  'seq-len': { kind: 'number', integer: true, min: 2, default: 512, help: 'tokens per example; longer ones are truncated' },
  packing: { kind: 'boolean', default: false, help: 'join short examples into rows of seq-len tokens' },
  'train-on-inputs': { kind: 'boolean', default: false, help: 'take the loss on prompts and user turns too' },
  'chat-template-kwargs': { kind: 'string', help: 'JSON object of chat template variables, e.g. \'{"enable_thinking": false}\' for Qwen3' },
  'skip-malformed': { kind: 'boolean', default: false, help: 'skip malformed JSONL lines (counted) instead of stopping' },
  epochs: { kind: 'number', min: 0, default: D.epochs, help: 'passes over the data (ignored with --max-steps)' },
  'max-steps': { kind: 'number', integer: true, min: 1, help: 'optimizer steps to run' },
  'batch-size': { kind: 'number', integer: true, min: 1, default: D.batchSize, help: 'examples per micro-batch' },
  'grad-accum': { kind: 'number', integer: true, min: 1, default: D.gradAccum, help: 'micro-batches per optimizer step' },
  lr: { kind: 'number', min: 0, default: D.lr, help: 'peak learning rate' },
  'lr-scheduler': { kind: 'enum', values: LR_SCHEDULER_TYPES, default: D.lrScheduler, help: 'learning-rate schedule' },
  'warmup-steps': { kind: 'number', integer: true, min: 0, default: D.warmupSteps, help: 'linear warmup steps' },
  'weight-decay': { kind: 'number', min: 0, default: D.weightDecay, help: 'AdamW decoupled weight decay' },
  'max-grad-norm': { kind: 'number', min: 0, default: D.maxGradNorm, help: 'clip the gradient norm to this (0: off)' },
  r: { kind: 'number', integer: true, min: 1, default: 8, help: 'LoRA rank' },
  'lora-alpha': { kind: 'number', min: 0, default: 16, help: 'LoRA alpha (scaling alpha / r)' },
  'lora-dropout': { kind: 'number', min: 0, max: 1, exclusiveMax: true, default: 0.05, help: 'dropout on the adapter input' },
  'target-modules': { kind: 'string', default: 'all-linear', help: 'comma list of module names, a full-match regex, or all-linear' },
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
  samples: { kind: 'number', integer: true, min: 0, default: 3, help: 'held-out prompts shown before and after training' },
  resume: { kind: 'flag-or-string', help: 'continue from the latest checkpoint in --output, or from the checkpoint folder given' },
  overwrite: { kind: 'boolean', default: false, help: 'replace a run already in --output' },
};

/** The validated options of one `train` invocation. */
export interface TrainCommandOptions {
  model: string | null;
  data: string | null;
  output: string | null;
  validationData: string | null;
  validationSplit: number;
  dataFormat: 'auto' | (typeof DATA_FORMATS)[number];
  seqLen: number;
  packing: boolean;
  trainOnInputs: boolean;
  /** Variables the chat template sees besides the messages (transformers' apply_chat_template kwargs). */
  chatTemplateKwargs: Record<string, unknown> | null;
  skipMalformed: boolean;
  epochs: number;
  maxSteps: number | null;
  batchSize: number;
  gradAccum: number;
  lr: number;
  lrScheduler: LrSchedulerType;
  warmupSteps: number;
  weightDecay: number;
  maxGradNorm: number;
  r: number;
  loraAlpha: number;
  loraDropout: number;
  targetModules: string | string[];
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
  if (v['resume'] !== undefined && bool('overwrite')) throw new UsageError('--resume continues the run in --output and --overwrite replaces it; give one of them.');
  const device = String(v['device']);
  if (!/^(cpu|cuda(:\d+)?)$/.test(device)) throw new UsageError(`--device must be cpu, cuda or cuda:N; got "${device}".`);
  return {
    model: str('model'),
    data: str('data'),
    output: str('output'),
    validationData: str('validation-data'),
    validationSplit: num('validation-split'),
    dataFormat: v['data-format'] as TrainCommandOptions['dataFormat'],
    seqLen: num('seq-len'),
    packing: bool('packing'),
    trainOnInputs: bool('train-on-inputs'),
    chatTemplateKwargs: parseTemplateKwargs(v['chat-template-kwargs']),
    skipMalformed: bool('skip-malformed'),
    epochs: num('epochs'),
    maxSteps: v['max-steps'] === undefined ? null : num('max-steps'),
    batchSize: num('batch-size'),
    gradAccum: num('grad-accum'),
    lr: num('lr'),
    lrScheduler: v['lr-scheduler'] as LrSchedulerType,
    warmupSteps: num('warmup-steps'),
    weightDecay: num('weight-decay'),
    maxGradNorm: num('max-grad-norm'),
    r: num('r'),
    loraAlpha: num('lora-alpha'),
    loraDropout: num('lora-dropout'),
    targetModules: parseTargetModules(String(v['target-modules'])),
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
    samples: num('samples'),
    resume: v['resume'] === undefined ? null : v['resume'] === true ? true : String(v['resume']),
    overwrite: bool('overwrite'),
    explicit,
    values: v,
  };
}

/** --chat-template-kwargs: a JSON object (a config file may give the object itself). */
function parseTemplateKwargs(v: unknown): Record<string, unknown> | null {
  if (v === undefined || v === null) return null;
  let value: unknown = v;
  if (typeof v === 'string') {
    try {
      value = JSON.parse(v);
    } catch {
      throw new UsageError(`--chat-template-kwargs must be a JSON object such as '{"enable_thinking": false}'; got ${v}.`);
    }
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new UsageError(`--chat-template-kwargs must be a JSON object such as '{"enable_thinking": false}'.`);
  return value as Record<string, unknown>;
}
