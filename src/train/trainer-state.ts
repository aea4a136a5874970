import { JsonFields } from './json-fields.js';
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

/** What every damaged checkpoint file's message ends with. */
export const DAMAGED_CHECKPOINT = 'the checkpoint is damaged or from another run, so resume from an earlier checkpoint or start again with --overwrite';

const EARLY_STOPPING_COUNTER = 'stateful_callbacks.EarlyStoppingCallback.attributes.early_stopping_patience_counter';

/** trainer_state.json as trainerStateJson writes it; every field checked, each failure one sentence naming it. */
export function parseTrainerState(json: Record<string, unknown>, path: string): TrainerState {
  const f = new JsonFields(path, json, DAMAGED_CHECKPOINT);
  const history = f.get('log_history') ?? [];
  if (!Array.isArray(history)) f.fail('log_history', 'must be a list of log entries');
  (history as unknown[]).forEach((entry, i) => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) f.fail(`log_history[${i}]`, 'must be an object of numbers');
    for (const [k, v] of Object.entries(entry as object)) if (v !== null && typeof v !== 'number') f.fail(`log_history[${i}].${k}`, `must be a number or null, not ${JSON.stringify(v).slice(0, 40)}`);
  });
  const epoch = f.finite('epoch');
  if (epoch < 0) f.fail('epoch', `must be >= 0, not ${epoch}`);
  return {
    globalStep: f.integer('global_step'),
    maxSteps: f.integer('max_steps'),
    epoch,
    logHistory: history as LogEntry[],
    numInputTokensSeen: f.integer('num_input_tokens_seen', 0, 0),
    data: { epoch: f.integer('data_position.epoch'), batchInEpoch: f.integer('data_position.batch_in_epoch') },
    bestMetric: f.nullable('best_metric', 'number'),
    bestModelCheckpoint: f.nullable('best_model_checkpoint', 'string'),
    bestGlobalStep: f.get('best_global_step') == null ? null : f.integer('best_global_step'),
    earlyStoppingPatienceCounter: f.integer(EARLY_STOPPING_COUNTER, 0, 0),
  };
}
