import { PeftError } from './errors.js';

/** Module names (suffixes of module paths), a regex string that must match a whole path, or "all-linear". */
export type TargetModules = string | readonly string[];
export type LoraBias = 'none' | 'all' | 'lora_only';
/**
 * true: A kaiming-uniform (torch's nn.Linear init), B zero; "gaussian": A ~ N(0, std 1/r), B zero; false: A and B
 * both keep nn.Linear's init, so the adapter changes the output from the start (PEFT uses this for tests).
 */
export type InitLoraWeights = boolean | 'gaussian';

/** LoRA options in TypeScript spelling; adapter_config.json carries the same fields in PEFT's snake_case. */
export interface LoraConfig {
  /** Rank; default 8. */
  r?: number;
  /** Scaling numerator: the update is (loraAlpha / r) * B A; default 8. */
  loraAlpha?: number;
  /** Dropout probability on the adapter's input while training; default 0. */
  loraDropout?: number;
  /** Default: PEFT's choice for the architecture (q_proj and v_proj for the Llama family). */
  targetModules?: TargetModules | null;
  excludeModules?: TargetModules | null;
  bias?: LoraBias;
  /** Scale by loraAlpha / sqrt(r) (rsLoRA). */
  useRslora?: boolean;
  /** Weight-decomposed LoRA: a trainable magnitude per output row. */
  useDora?: boolean;
  /** lora_B carries a bias. */
  loraBias?: boolean;
  initLoraWeights?: InitLoraWeights;
  /** Only these layer indices (the number after the layers container, e.g. model.layers.3). */
  layersToTransform?: number | readonly number[] | null;
  layersPattern?: string | readonly string[] | null;
  /** Rank per module: keys are regexes matched against the end of the module path. */
  rankPattern?: Readonly<Record<string, number>>;
  alphaPattern?: Readonly<Record<string, number>>;
  /** Modules trained in full next to the adapter and saved with it (e.g. "lm_head"). */
  modulesToSave?: readonly string[] | null;
  taskType?: string | null;
  baseModelNameOrPath?: string | null;
  revision?: string | null;
  inferenceMode?: boolean;
  /** Seed for initialising A and for dropout masks (loraforge only: not written to adapter_config.json). */
  seed?: number;
}

/** A LoraConfig with every field decided, plus the fields of a loaded adapter_config.json that loraforge passes through. */
export interface ResolvedLoraConfig {
  readonly r: number;
  readonly loraAlpha: number;
  readonly loraDropout: number;
  readonly targetModules: TargetModules | null;
  readonly excludeModules: TargetModules | null;
  readonly bias: LoraBias;
  readonly useRslora: boolean;
  readonly useDora: boolean;
  readonly loraBias: boolean;
  readonly initLoraWeights: InitLoraWeights;
  readonly layersToTransform: number | readonly number[] | null;
  readonly layersPattern: string | readonly string[] | null;
  readonly rankPattern: Readonly<Record<string, number>>;
  readonly alphaPattern: Readonly<Record<string, number>>;
  readonly modulesToSave: readonly string[] | null;
  readonly taskType: string | null;
  readonly baseModelNameOrPath: string | null;
  readonly revision: string | null;
  readonly inferenceMode: boolean;
  readonly seed: number;
  /** adapter_config.json fields that do not change the computation here, written back unchanged (snake_case). */
  readonly passthrough: Readonly<Record<string, unknown>>;
}

const BIAS_VALUES: readonly LoraBias[] = ['none', 'all', 'lora_only'];

export function resolveLoraConfig(config: LoraConfig, passthrough: Readonly<Record<string, unknown>> = {}): ResolvedLoraConfig {
  const resolved: ResolvedLoraConfig = {
    r: config.r ?? 8,
    loraAlpha: config.loraAlpha ?? 8,
    loraDropout: config.loraDropout ?? 0,
    targetModules: config.targetModules ?? null,
    excludeModules: config.excludeModules ?? null,
    bias: config.bias ?? 'none',
    useRslora: config.useRslora ?? false,
    useDora: config.useDora ?? false,
    loraBias: config.loraBias ?? false,
    initLoraWeights: config.initLoraWeights ?? true,
    layersToTransform: config.layersToTransform ?? null,
    layersPattern: config.layersPattern ?? null,
    rankPattern: config.rankPattern ?? {},
    alphaPattern: config.alphaPattern ?? {},
    modulesToSave: config.modulesToSave ?? null,
    taskType: config.taskType === undefined ? 'CAUSAL_LM' : config.taskType,
    baseModelNameOrPath: config.baseModelNameOrPath ?? null,
    revision: config.revision ?? null,
    inferenceMode: config.inferenceMode ?? false,
    seed: config.seed ?? 0,
    passthrough,
  };
  validate(resolved);
  return resolved;
}

function validate(c: ResolvedLoraConfig): void {
  const positiveInt = (v: number) => Number.isInteger(v) && v > 0;
  if (!positiveInt(c.r)) throw new PeftError(`LoRA rank r must be a positive integer, got ${c.r}.`);
  if (!Number.isFinite(c.loraAlpha)) throw new PeftError(`loraAlpha must be a finite number, got ${c.loraAlpha}.`);
  if (!(c.loraDropout >= 0 && c.loraDropout < 1)) throw new PeftError(`loraDropout must be in [0, 1), got ${c.loraDropout}.`);
  if (!BIAS_VALUES.includes(c.bias)) throw new PeftError(`bias must be one of ${BIAS_VALUES.join(', ')}, got ${JSON.stringify(c.bias)}.`);
  if (c.initLoraWeights !== true && c.initLoraWeights !== false && c.initLoraWeights !== 'gaussian') {
    throw new PeftError(`initLoraWeights ${JSON.stringify(c.initLoraWeights)} is not supported; use true, false or "gaussian".`);
  }
  for (const [key, rank] of Object.entries(c.rankPattern)) {
    if (!positiveInt(rank)) throw new PeftError(`rankPattern["${key}"] must be a positive integer, got ${rank}.`);
  }
  for (const [key, alpha] of Object.entries(c.alphaPattern)) {
    if (!Number.isFinite(alpha)) throw new PeftError(`alphaPattern["${key}"] must be a finite number, got ${alpha}.`);
  }
  const layers = c.layersToTransform;
  if (layers !== null && !(typeof layers === 'number' ? [layers] : layers).every((i) => Number.isInteger(i) && i >= 0)) {
    throw new PeftError(`layersToTransform must hold non-negative layer indices, got ${JSON.stringify(layers)}.`);
  }
  if (Array.isArray(c.targetModules) && c.targetModules.length === 0) {
    throw new PeftError('targetModules is an empty list; name the modules to adapt (e.g. ["q_proj", "v_proj"]) or pass "all-linear".');
  }
}

/** PEFT's scaling of the update B A: alpha / r, or alpha / sqrt(r) with rsLoRA. */
export function loraScaling(alpha: number, r: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}
