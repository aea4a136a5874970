import type { LrSchedulerType } from '../optim/index.js';

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
    eval_strategy: a.evalSteps > 0 ? 'steps' : 'no',
    eval_steps: a.evalSteps > 0 ? a.evalSteps : null,
    save_strategy: a.saveSteps > 0 ? 'steps' : 'no',
    save_steps: a.saveSteps,
    save_total_limit: a.saveTotalLimit > 0 ? a.saveTotalLimit : null,
    gradient_checkpointing: a.gradientCheckpointing,
    optim: 'adamw_torch',
    ...(a.loraplusLrRatio != null ? { loraplus_lr_ratio: a.loraplusLrRatio, loraplus_lr_embedding: a.loraplusLrEmbedding ?? 1e-6 } : {}),
    ...extra,
  };
}
