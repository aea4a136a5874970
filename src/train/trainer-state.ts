import type { TrainingArguments } from './training-args.js';

/** One entry of log_history, with transformers' keys (loss, learning_rate, grad_norm, eval_loss, epoch, step). */
export type LogEntry = Record<string, number | null>;

/** Where the next micro-batch comes from: the epoch and the index of its micro-batch within that epoch. */
export interface DataPosition {
  epoch: number;
  batchInEpoch: number;
}

/** The run's progress; trainer_state.json is its transformers-named serialization. */
export interface TrainerState {
  globalStep: number;
  maxSteps: number;
  /** Fractional epochs done (transformers' `epoch`). */
  epoch: number;
  logHistory: LogEntry[];
  numInputTokensSeen: number;
  data: DataPosition;
  /** Best-model tracking (metric_for_best_model): transformers' best_metric, best_model_checkpoint, best_global_step. */
  bestMetric?: number | null;
  bestModelCheckpoint?: string | null;
  bestGlobalStep?: number | null;
  /** EarlyStoppingCallback's early_stopping_patience_counter (kept in stateful_callbacks, as transformers does). */
  earlyStoppingPatienceCounter?: number;
}

export function trainerStateJson(s: TrainerState, a: TrainingArguments): Record<string, unknown> {
  return {
    best_global_step: s.bestGlobalStep ?? null,
    best_metric: s.bestMetric ?? null,
    best_model_checkpoint: s.bestModelCheckpoint ?? null,
    epoch: s.epoch,
    eval_steps: a.evalSteps > 0 ? a.evalSteps : null,
    global_step: s.globalStep,
    is_hyper_param_search: false,
    is_local_process_zero: true,
    is_world_process_zero: true,
    log_history: s.logHistory,
    logging_steps: a.loggingSteps,
    max_steps: s.maxSteps,
    num_input_tokens_seen: s.numInputTokensSeen,
    num_train_epochs: a.epochs,
    save_steps: a.saveSteps,
    stateful_callbacks: a.earlyStoppingPatience != null
      ? {
          EarlyStoppingCallback: {
            args: { early_stopping_patience: a.earlyStoppingPatience, early_stopping_threshold: a.earlyStoppingThreshold ?? 0 },
            attributes: { early_stopping_patience_counter: s.earlyStoppingPatienceCounter ?? 0 },
          },
        }
      : {},
    total_flos: 0,
    train_batch_size: a.batchSize,
    trial_name: null,
    trial_params: null,
    // loraforge: where the data loader stands, so that --resume continues with the very next micro-batch.
    data_position: { epoch: s.data.epoch, batch_in_epoch: s.data.batchInEpoch },
  };
}

export function parseTrainerState(json: Record<string, unknown>, path: string): TrainerState {
  const pos = json['data_position'] as { epoch?: unknown; batch_in_epoch?: unknown } | undefined;
  const num = (v: unknown, what: string): number => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${path}: "${what}" is missing or not a number; the checkpoint is damaged, resume from an earlier one.`);
    return v;
  };
  return {
    globalStep: num(json['global_step'], 'global_step'),
    maxSteps: num(json['max_steps'], 'max_steps'),
    epoch: num(json['epoch'], 'epoch'),
    logHistory: (json['log_history'] as LogEntry[] | undefined) ?? [],
    numInputTokensSeen: num(json['num_input_tokens_seen'] ?? 0, 'num_input_tokens_seen'),
    data: { epoch: num(pos?.epoch, 'data_position.epoch'), batchInEpoch: num(pos?.batch_in_epoch, 'data_position.batch_in_epoch') },
    bestMetric: typeof json['best_metric'] === 'number' ? json['best_metric'] : null,
    bestModelCheckpoint: typeof json['best_model_checkpoint'] === 'string' ? json['best_model_checkpoint'] : null,
    bestGlobalStep: typeof json['best_global_step'] === 'number' ? json['best_global_step'] : null,
    earlyStoppingPatienceCounter: Number(
      (json['stateful_callbacks'] as { EarlyStoppingCallback?: { attributes?: { early_stopping_patience_counter?: unknown } } } | undefined)?.EarlyStoppingCallback?.attributes?.early_stopping_patience_counter ?? 0,
    ),
  };
}
