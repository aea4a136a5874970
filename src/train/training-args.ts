import { optimizerSettings, resolveLrSchedule, warmupStepsFor, type LrSchedulerKwargs, type LrSchedulerType, type OptimName } from '../optim/index.js';

export type IntervalStrategy = 'no' | 'steps' | 'epoch';

/** Everything that decides a training run's numbers; written to training_args.json in transformers' names. */
export interface TrainingArguments {
  outputDir: string;
  /** Passes over the training data; ignored when maxSteps is set. */
  epochs: number;
  /** Optimizer steps to run; null trains for `epochs`. */
  maxSteps: number | null;
  /** Examples per micro-batch. */
  batchSize: number;
  /** Micro-batches per optimizer step. */
  gradAccum: number;
  lr: number;
  weightDecay: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEpsilon: number;
  lrScheduler: LrSchedulerType;
  warmupSteps: number;
  /** Clip the global gradient norm to this; 0 turns clipping off. */
  maxGradNorm: number;
  seed: number;
  /** Log (progress line, metrics.jsonl) every this many optimizer steps. */
  loggingSteps: number;
  /** Evaluate every this many optimizer steps (and at the end); 0: only at the end. */
  evalSteps: number;
  /** Write a checkpoint every this many optimizer steps (and on interrupt); 0: none. */
  saveSteps: number;
  /** Keep at most this many checkpoints (oldest removed first); 0 keeps all. */
  saveTotalLimit: number;
  /** Recompute each decoder layer's activations in the backward pass instead of keeping them. */
  gradientCheckpointing: boolean;
  /** Shuffle the training examples each epoch (seeded). */
  shuffle: boolean;
  /** LoRA+ (PEFT's loraplus_lr_ratio): lora_B matrices step at lr * this; null or absent: one lr for all. */
  loraplusLrRatio?: number | null;
  /** LoRA+ rate of adapters on embedding layers (PEFT's loraplus_lr_embedding); default 1e-6. */
  loraplusLrEmbedding?: number;
  /** Warmup as a fraction of the run's optimizer steps, ceil(ratio * steps); used when warmupSteps is 0. */
  warmupRatio?: number;
  /** transformers' lr_scheduler_kwargs (min_lr, min_lr_rate, num_cycles, power, lr_end, num_stable_steps, ...). */
  lrSchedulerKwargs?: LrSchedulerKwargs;
  /** Hugging Face's optim name; default adamw_torch. */
  optim?: OptimName;
  /** When to evaluate; default 'steps' when evalSteps > 0, else 'no' (an evaluation set is still scored at the end). */
  evalStrategy?: IntervalStrategy;
  /** When to write checkpoints; default 'steps' when saveSteps > 0, else 'no'. */
  saveStrategy?: IntervalStrategy;
  /** The evaluation metric that picks the best checkpoint ("loss" and "eval_loss" are the same); default "loss" when loadBestModelAtEnd or early stopping is on, else none. */
  metricForBestModel?: string | null;
  /** Default: true unless the metric's name ends in "loss". */
  greaterIsBetter?: boolean | null;
  /** The final adapter is the best checkpoint's. */
  loadBestModelAtEnd?: boolean;
  /** transformers' EarlyStoppingCallback: stop after this many evaluations without improvement; null: off. */
  earlyStoppingPatience?: number | null;
  /** An improvement must exceed this to reset the patience count. Default 0. */
  earlyStoppingThreshold?: number;
  /** Integrations to log to besides metrics.jsonl: 'tensorboard' (event files under <output>/runs/). */
  reportTo?: readonly 'tensorboard'[];
}

/** The strategies a run uses, after the defaults. */
export function evalStrategyOf(a: TrainingArguments): IntervalStrategy {
  return a.evalStrategy ?? (a.evalSteps > 0 ? 'steps' : 'no');
}
export function saveStrategyOf(a: TrainingArguments): IntervalStrategy {
  return a.saveStrategy ?? (a.saveSteps > 0 ? 'steps' : 'no');
}
/** metric_for_best_model as transformers resolves it (null: no best-model tracking). */
export function metricForBestModelOf(a: TrainingArguments): string | null {
  if (a.metricForBestModel != null) return a.metricForBestModel;
  return a.loadBestModelAtEnd || a.earlyStoppingPatience != null ? 'loss' : null;
}
export function greaterIsBetterOf(a: TrainingArguments): boolean {
  const metric = metricForBestModelOf(a);
  return a.greaterIsBetter ?? (metric !== null && !metric.endsWith('loss'));
}

/** transformers' TrainingArguments.__post_init__ checks for these options, one sentence each. */
export function checkTrainingArguments(a: TrainingArguments): void {
  const evalS = evalStrategyOf(a);
  const saveS = saveStrategyOf(a);
  for (const [k, v] of [['eval_strategy', evalS], ['save_strategy', saveS]] as const) {
    if (!['no', 'steps', 'epoch'].includes(v)) throw new Error(`${k} must be no, steps or epoch; got "${v}".`);
  }
  if (evalS === 'steps' && !(a.evalSteps > 0)) throw new Error('eval_strategy "steps" needs eval_steps > 0.');
  if (saveS === 'steps' && !(a.saveSteps > 0)) throw new Error('save_strategy "steps" needs save_steps > 0.');
  if (a.loadBestModelAtEnd) {
    if (evalS === 'no') throw new Error('load_best_model_at_end needs an evaluation strategy (eval_strategy steps or epoch).');
    if (evalS !== saveS) throw new Error(`load_best_model_at_end requires the save and eval strategy to match, but found eval_strategy ${evalS} and save_strategy ${saveS}.`);
    if (evalS === 'steps' && a.saveSteps % a.evalSteps !== 0) throw new Error(`load_best_model_at_end requires save_steps (${a.saveSteps}) to be a round multiple of eval_steps (${a.evalSteps}).`);
  }
  if (a.earlyStoppingPatience != null) {
    if (!(Number.isInteger(a.earlyStoppingPatience) && a.earlyStoppingPatience >= 1)) throw new Error(`early_stopping_patience must be a positive integer; got ${a.earlyStoppingPatience}.`);
    if (evalS === 'no') throw new Error('Early stopping needs an evaluation strategy (eval_strategy steps or epoch).');
  }
  if (a.earlyStoppingThreshold !== undefined && !(a.earlyStoppingThreshold >= 0)) throw new Error(`early_stopping_threshold must be >= 0; got ${a.earlyStoppingThreshold}.`);
  optimizerSettings(a.optim ?? 'adamw_torch');
  warmupStepsFor(0, a.warmupSteps, a.warmupRatio ?? 0);
  // The schedule's own checks (its kwargs); none depends on the number of steps.
  resolveLrSchedule(a.lrScheduler, a.lr, 0, 0, a.lrSchedulerKwargs);
  for (const r of a.reportTo ?? []) if (r !== 'tensorboard') throw new Error(`report_to "${String(r)}" is not supported; use tensorboard or none.`);
}

export const DEFAULT_TRAINING_ARGUMENTS: Omit<TrainingArguments, 'outputDir'> = {
  epochs: 3,
  maxSteps: null,
  batchSize: 4,
  gradAccum: 1,
  lr: 2e-4,
  weightDecay: 0,
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamEpsilon: 1e-8,
  lrScheduler: 'linear',
  warmupSteps: 0,
  maxGradNorm: 1,
  seed: 42,
  loggingSteps: 1,
  evalSteps: 0,
  saveSteps: 0,
  saveTotalLimit: 0,
  gradientCheckpointing: false,
  shuffle: true,
};

/** training_args.json: transformers' TrainingArguments field names where one exists. */
export function trainingArgsJson(a: TrainingArguments, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    output_dir: a.outputDir,
    num_train_epochs: a.epochs,
    max_steps: a.maxSteps ?? -1,
    per_device_train_batch_size: a.batchSize,
    per_device_eval_batch_size: a.batchSize,
    gradient_accumulation_steps: a.gradAccum,
    learning_rate: a.lr,
    weight_decay: a.weightDecay,
    adam_beta1: a.adamBeta1,
    adam_beta2: a.adamBeta2,
    adam_epsilon: a.adamEpsilon,
    lr_scheduler_type: a.lrScheduler,
    warmup_steps: a.warmupSteps,
    max_grad_norm: a.maxGradNorm,
    seed: a.seed,
    logging_steps: a.loggingSteps,
    eval_strategy: evalStrategyOf(a),
    eval_steps: a.evalSteps > 0 ? a.evalSteps : null,
    save_strategy: saveStrategyOf(a),
    save_steps: a.saveSteps,
    save_total_limit: a.saveTotalLimit > 0 ? a.saveTotalLimit : null,
    gradient_checkpointing: a.gradientCheckpointing,
    optim: a.optim ?? 'adamw_torch',
    warmup_ratio: a.warmupRatio ?? 0,
    lr_scheduler_kwargs: a.lrSchedulerKwargs ?? {},
    metric_for_best_model: metricForBestModelOf(a),
    greater_is_better: metricForBestModelOf(a) === null ? null : greaterIsBetterOf(a),
    load_best_model_at_end: a.loadBestModelAtEnd ?? false,
    report_to: [...(a.reportTo ?? [])],
    ...(a.loraplusLrRatio != null ? { loraplus_lr_ratio: a.loraplusLrRatio, loraplus_lr_embedding: a.loraplusLrEmbedding ?? 1e-6 } : {}),
    ...extra,
  };
}
