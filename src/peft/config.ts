import { PeftError } from './errors.js';

/** Module names (suffixes of module paths), a regex string that must match a whole path, or "all-linear". */
export type TargetModules = string | readonly string[];
export type LoraBias = 'none' | 'all' | 'lora_only';
/** trainable_token_indices: ids on the input embedding, or ids per embedding layer name. */
export type TrainableTokenIndices = readonly number[] | Readonly<Record<string, readonly number[]>>;
/**
 * true: A kaiming-uniform (torch's nn.Linear init), B zero; "gaussian": A ~ N(0, std 1/r), B zero; false: A and B
 * both keep nn.Linear's init, so the adapter changes the output from the start (PEFT uses this for tests).
 * Initialisations that rewrite the base weight (PEFT 0.21's; see base-init.ts), which need `getPeftModelAsync` /
 * `addAdapterAsync` because they read the weight: "pissa" (top-r SVD, base becomes W - scaling B A), "pissa_niter_N"
 * (the same from torch.svd_lowrank with N subspace iterations, its Gaussian sketch drawn from `seed`), "olora"
 * (any case, as PEFT: A, B from the QR of W, base W - scaling B A), "loftq" (needs loftqConfig: the base becomes the
 * NF4 quantization, A and B the SVD of the quantization error). "orthogonal" leaves the base alone (even r; A, B from
 * one random orthogonal matrix, drawn from `seed`, so B A = 0).
 */
export type InitLoraWeights = boolean | 'gaussian' | 'pissa' | `pissa_niter_${number}` | 'olora' | 'OLoRA' | 'orthogonal' | 'loftq';
/** PEFT's LoftQConfig: loftq_bits (only 4 here: bitsandbytes' NF4) and loftq_iter alternating iterations (default 1). */
export interface LoftqConfig {
  loftqBits?: number;
  loftqIter?: number;
}

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
  /**
   * Parameters adapted in place (PEFT's target_parameters, lora.ParamWrapper): "experts.gate_up_proj" and
   * "experts.down_proj" of a mixture-of-experts layer, matched as suffixes of "<module path>.<parameter>".
   * With it and no targetModules, only these parameters are adapted.
   */
  targetParameters?: readonly string[] | null;
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
  /**
   * Token ids whose rows of the input embedding train (PEFT's TrainableTokensLayer), or {layer name: ids} for other
   * embedding layers; a tied output head follows them.
   */
  trainableTokenIndices?: TrainableTokenIndices | null;
  taskType?: string | null;
  baseModelNameOrPath?: string | null;
  revision?: string | null;
  inferenceMode?: boolean;
  /** Seed for initialising A and for dropout masks (loraforge only: not written to adapter_config.json). */
  seed?: number;
  /** Required with initLoraWeights "loftq", ignored otherwise (as PEFT); adapter_config.json's loftq_config. */
  loftqConfig?: LoftqConfig | null;
}

/** A LoraConfig with every field decided, plus the fields of a loaded adapter_config.json that loraforge passes through. */
export interface ResolvedLoraConfig {
  readonly r: number;
  readonly loraAlpha: number;
  readonly loraDropout: number;
  readonly targetModules: TargetModules | null;
  /** As given, [] and null kept apart (adapter_config.json is written back as it was read). */
  readonly targetParameters: readonly string[] | null;
  readonly excludeModules: TargetModules | null;
  readonly bias: LoraBias;
  readonly useRslora: boolean;
  readonly useDora: boolean;
  readonly loraBias: boolean;
  readonly initLoraWeights: InitLoraWeights;
  /** Set exactly when initLoraWeights is "loftq". */
  readonly loftqConfig?: Readonly<Required<LoftqConfig>> | null;
  readonly layersToTransform: number | readonly number[] | null;
  readonly layersPattern: string | readonly string[] | null;
  readonly rankPattern: Readonly<Record<string, number>>;
  readonly alphaPattern: Readonly<Record<string, number>>;
  readonly modulesToSave: readonly string[] | null;
  readonly trainableTokenIndices: TrainableTokenIndices | null;
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
    targetParameters: config.targetParameters ?? null,
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
    trainableTokenIndices: config.trainableTokenIndices ?? null,
    taskType: config.taskType === undefined ? 'CAUSAL_LM' : config.taskType,
    baseModelNameOrPath: config.baseModelNameOrPath ?? null,
    revision: config.revision ?? null,
    inferenceMode: config.inferenceMode ?? false,
    seed: config.seed ?? 0,
    loftqConfig: config.initLoraWeights === 'loftq' && config.loftqConfig ? { loftqBits: config.loftqConfig.loftqBits ?? 4, loftqIter: config.loftqConfig.loftqIter ?? 1 } : null,
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
  if (initKind(c.initLoraWeights) === null) {
    throw new PeftError(`initLoraWeights ${JSON.stringify(c.initLoraWeights)} is not supported; use true, false, "gaussian", "pissa", "pissa_niter_<iterations>", "olora", "orthogonal" or "loftq".`);
  }
  const loftq = c.loftqConfig;
  if (loftq && loftq.loftqBits !== 4) throw new PeftError(`loftqConfig.loftqBits ${loftq.loftqBits} is not supported; loraforge's LoftQ quantizes to bitsandbytes' NF4, so use 4.`);
  if (loftq && !positiveInt(loftq.loftqIter)) throw new PeftError(`loftqConfig.loftqIter must be a positive integer (PEFT: the number of iterations must be greater than 0), got ${loftq.loftqIter}.`);
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
  const tokens = c.trainableTokenIndices;
  if (tokens !== null && !(Array.isArray(tokens) ? [tokens] : Object.values(tokens)).every((ids) => Array.isArray(ids) && ids.every((i) => Number.isInteger(i) && i >= 0))) {
    throw new PeftError(`trainableTokenIndices must hold non-negative token ids (a list, or lists per layer name), got ${JSON.stringify(tokens)}.`);
  }
  validateCombinations(c);
}

/** PEFT's TaskType values; loraforge builds causal LMs only, so CAUSAL_LM (or null) is the one it accepts. */
const PEFT_TASK_TYPES = ['SEQ_CLS', 'SEQ_2_SEQ_LM', 'CAUSAL_LM', 'TOKEN_CLS', 'QUESTION_ANS', 'FEATURE_EXTRACTION'];

/** The combinations PEFT 0.21's PeftConfig / LoraConfig.__post_init__ refuse, each refused here in one sentence. */
function validateCombinations(c: ResolvedLoraConfig): void {
  if (c.taskType !== null && c.taskType !== 'CAUSAL_LM') {
    const known = PEFT_TASK_TYPES.includes(c.taskType) ? 'loraforge adapts causal language models only' : `PEFT's task types are ${PEFT_TASK_TYPES.join(', ')}`;
    throw new PeftError(`taskType ${JSON.stringify(c.taskType)} is not supported (${known}); use "CAUSAL_LM" or null.`);
  }
  if (typeof c.targetModules === 'string' && c.layersToTransform !== null) {
    throw new PeftError('layersToTransform cannot be used when targetModules is a string (a regex over whole module paths, or "all-linear"); pass targetModules as a list of names, or put the layer indices in the regex.');
  }
  if (typeof c.targetModules === 'string' && c.layersPattern !== null) {
    throw new PeftError('layersPattern cannot be used when targetModules is a string (a regex over whole module paths, or "all-linear"); pass targetModules as a list of names, or put the layer container in the regex.');
  }
  if (c.layersPattern !== null && c.layersPattern.length > 0 && c.layersToTransform === null) {
    throw new PeftError(`layersPattern ${JSON.stringify(c.layersPattern)} is given without layersToTransform; give the layer indices too (layersPattern only names the container they index).`);
  }
  if (c.loraBias && c.initLoraWeights !== true && c.initLoraWeights !== false) {
    throw new PeftError(`loraBias is supported only with initLoraWeights true or false, got initLoraWeights ${JSON.stringify(c.initLoraWeights)}.`);
  }
  if (c.loraBias && c.useDora) throw new PeftError('loraBias is not supported with DoRA (useDora); turn one of them off.');
  validateTargetParameters(c);
  const loftq = (c as { loftqConfig?: unknown }).loftqConfig ?? c.passthrough['loftq_config'];
  if (c.initLoraWeights === ('loftq' as unknown) && (loftq === undefined || loftq === null || (typeof loftq === 'object' && Object.keys(loftq).length === 0))) {
    throw new PeftError('initLoraWeights "loftq" needs loftq_config (e.g. {"loftq_bits": 4, "loftq_iter": 1}); give it or choose another initLoraWeights.');
  }
  const megatron = c.passthrough['megatron_config'];
  if (c.useDora && megatron !== undefined && megatron !== null && megatron !== false) {
    throw new PeftError('useDora is not supported with megatron_config; set useDora false or drop megatron_config.');
  }
}

/** What PEFT 0.21's lora.ParamWrapper refuses, and what loraforge's expert adapters do not cover, for target_parameters. */
function validateTargetParameters(c: ResolvedLoraConfig): void {
  const params = c.targetParameters ?? [];
  if (params.length === 0) return;
  if (params.some((p) => typeof p !== 'string' || p.length === 0)) throw new PeftError(`targetParameters must be a list of "<module>.<parameter>" names, got ${JSON.stringify(params)}.`);
  if (c.loraDropout !== 0) throw new PeftError(`loraDropout ${c.loraDropout} cannot be used with targetParameters (PEFT's ParamWrapper cannot apply dropout to the input of a parameter); set loraDropout to 0.`);
  if (c.loraBias) throw new PeftError('loraBias cannot be used with targetParameters (PEFT\'s ParamWrapper has no bias); turn loraBias off.');
  if (c.useDora) throw new PeftError('useDora cannot be used with targetParameters (PEFT\'s ParamWrapper supports plain LoRA only); turn useDora off.');
  const init = initKind(c.initLoraWeights);
  if (init !== 'kaiming' && init !== 'none' && init !== 'gaussian') {
    throw new PeftError(`initLoraWeights ${JSON.stringify(c.initLoraWeights)} cannot be used with targetParameters (it reads a layer's weight, which an expert parameter is not); use true, false or "gaussian".`);
  }
  if (c.layersToTransform !== null) throw new PeftError('layersToTransform cannot be used with targetParameters (PEFT matches target_parameters by name only); name the layers\' parameters in targetParameters instead.');
}

/** PEFT's scaling of the update B A: alpha / r, or alpha / sqrt(r) with rsLoRA. */
export function loraScaling(alpha: number, r: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

/** What an initLoraWeights value asks for, or null when it is not one loraforge knows. */
export function initKind(init: unknown): 'kaiming' | 'none' | 'gaussian' | 'pissa' | 'pissa_niter' | 'olora' | 'orthogonal' | 'loftq' | null {
  if (init === true) return 'kaiming';
  if (init === false) return 'none';
  if (init === 'gaussian' || init === 'pissa' || init === 'orthogonal' || init === 'loftq') return init;
  if (typeof init === 'string' && init.toLowerCase() === 'olora') return 'olora';
  if (typeof init === 'string' && /^pissa_niter_\d+$/.test(init)) return 'pissa_niter';
  return null;
}
