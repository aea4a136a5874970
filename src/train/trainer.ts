import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { collate, epochBatches, type Batch, type TokenizedExample } from '../data/index.js';
import { add, mulScalar } from '../ops/index.js';
import { AdamW, clipGradNorm, loadOptimizerState, loraplusParamGroups, LrScheduler, optimizerSettings, resolveLrSchedule, saveOptimizerState, warmupStepsFor } from '../optim/index.js';
import { noGradAsync } from '../tensor/grad-mode.js';
import { scopeAsync } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { CausalLMInput } from '../models/causal-lm.js';
import { assignParametersFromFile } from './assign-parameters.js';
import { checkpointSteps, CHECKPOINT_PREFIX, pruneCheckpoints, writeCheckpointDir, writeJsonFile } from './checkpoint-dir.js';
import { TrainingError } from './errors.js';
import { removeInterruptedWrites } from './interrupted-writes.js';
import { JsonFields, readJsonObject } from './json-fields.js';
import type { DropoutControl, TrainableModel } from './trainable-model.js';
import { defaultLogDir, TensorBoardWriter } from './tensorboard.js';
import { DAMAGED_CHECKPOINT, parseTrainerState, trainerStateJson, type LogEntry, type TrainerState } from './trainer-state.js';
import { checkTrainingArguments, evalStrategyOf, greaterIsBetterOf, metricForBestModelOf, saveStrategyOf, trainingArgsJson, type TrainingArguments } from './training-args.js';
import { writingTo } from './write-errors.js';

/** What one optimizer step did; progress displays read it. */
export interface StepInfo {
  step: number;
  maxSteps: number;
  loss: number;
  /** Mean loss over the logging window so far, this step included: what the next log entry's `loss` reads. */
  windowLoss?: number;
  gradNorm: number | null;
  /** The rate this step used. */
  lr: number;
  /** Real (non-padding) tokens of this step. */
  tokens: number;
  seconds: number;
}

export interface TrainerCallbacks {
  onTrainBegin?(state: TrainerState): void;
  onStep?(info: StepInfo): void;
  /** A log_history entry (training loss, evaluation, or the final summary). */
  onLog?(entry: LogEntry): void;
  onSave?(dir: string): void;
}

export interface TrainerOptions {
  model: TrainableModel;
  args: TrainingArguments;
  train: readonly TokenizedExample[];
  eval?: readonly TokenizedExample[] | null;
  /** Input id on padded positions (its label is always -100). */
  padId: number;
  dropout?: DropoutControl;
  callbacks?: TrainerCallbacks;
  /** Extra fields for training_args.json (model, data, LoRA settings). */
  argsJsonExtra?: Record<string, unknown>;
  /** Runs between a checkpoint's temporary write and its rename (tests kill the process here). */
  beforeCheckpointRename?: () => Promise<void> | void;
}

export interface TrainResult {
  state: TrainerState;
  /** True when the signal stopped the run early (a checkpoint of that step was written). */
  interrupted: boolean;
  /** Mean training loss over the steps this process ran. */
  trainLoss: number;
  runtimeSeconds: number;
}

const METRICS_FILE = 'metrics.jsonl';

/**
 * The training loop: micro-batches of the seeded epoch order, token-weighted gradient accumulation (so k
 * micro-batches equal one batch of their union), clipping, AdamW, the LR schedule, periodic evaluation and
 * atomic checkpoints. Each step runs in one memory scope, so its activations are freed when it ends.
 */
export class Trainer {
  readonly args: TrainingArguments;
  readonly optimizer: AdamW;
  readonly scheduler: LrScheduler;
  readonly state: TrainerState;
  private readonly params: Map<string, Tensor>;
  /** Losses of the steps since the last training log entry (a checkpoint keeps them, for exact resumes). */
  private pendingLosses: number[] = [];
  private readonly batchesPerEpoch: number;
  /** The TensorBoard event file of this process (report_to tensorboard). */
  private tensorboard: TensorBoardWriter | null = null;

  constructor(private readonly options: TrainerOptions) {
    const a = options.args;
    this.args = a;
    checkTrainingArguments(a);
    const { paged } = optimizerSettings(a.optim ?? 'adamw_torch');
    if (options.train.length === 0) throw new Error('The training set is empty.');
    this.params = options.model.trainableParameters();
    if (this.params.size === 0) throw new Error('The model has no trainable parameters; add an adapter (getPeftModel) or load one with isTrainable.');
    this.optimizer = new AdamW(this.params, {
      lr: a.lr,
      betas: [a.adamBeta1, a.adamBeta2],
      eps: a.adamEpsilon,
      weightDecay: a.weightDecay,
      paged,
      noDecay: (name) => name.endsWith('.bias') || /norm\.weight$/.test(name),
      // LoRA+: PEFT's create_loraplus_optimizer groups (lora_B at lr * ratio).
      ...(a.loraplusLrRatio != null
        ? { groups: loraplusParamGroups(this.params, { lr: a.lr, loraplusLrRatio: a.loraplusLrRatio, loraplusLrEmbedding: a.loraplusLrEmbedding, loraplusWeightDecay: a.weightDecay }) }
        : {}),
    });
    this.batchesPerEpoch = Math.ceil(options.train.length / a.batchSize);
    const stepsPerEpoch = Math.ceil(this.batchesPerEpoch / a.gradAccum);
    const maxSteps = a.maxSteps ?? stepsPerEpoch * a.epochs;
    this.scheduler = new LrScheduler(a.lr, resolveLrSchedule(a.lrScheduler, a.lr, warmupStepsFor(maxSteps, a.warmupSteps, a.warmupRatio), maxSteps, a.lrSchedulerKwargs));
    this.state = { globalStep: 0, maxSteps, epoch: 0, logHistory: [], numInputTokensSeen: 0, data: { epoch: 0, batchInEpoch: 0 } };
  }

  /** Trains until maxSteps, or until `signal` aborts (then a checkpoint is written first). */
  async train(options: { resumeFrom?: string | null; signal?: AbortSignal } = {}): Promise<TrainResult> {
    const a = this.args;
    const out = a.outputDir;
    await writingTo(out, () => mkdir(out, { recursive: true }));
    await removeInterruptedWrites(out);
    if (options.resumeFrom) await this.loadCheckpoint(options.resumeFrom);
    await this.writeJson('training_args.json', trainingArgsJson(a, this.options.argsJsonExtra));
    const metrics = join(out, METRICS_FILE);
    await writingTo(metrics, () => writeFile(metrics, this.state.logHistory.map((e) => `${JSON.stringify(e)}\n`).join('')));
    if (a.reportTo?.includes('tensorboard')) this.tensorboard = await TensorBoardWriter.create(defaultLogDir(out));
    this.options.callbacks?.onTrainBegin?.(this.state);
    const evalStrategy = evalStrategyOf(a);
    const saveStrategy = saveStrategyOf(a);

    const started = performance.now();
    const firstStep = this.state.globalStep;
    let lossTotal = 0;
    let interrupted = false;
    let order: number[][] | null = null;
    let orderEpoch = -1;
    let lastEvalStep = -1;
    let lastSaveStep = -1;
    let stoppedEarly = false;
    while (this.state.globalStep < this.state.maxSteps) {
      if (options.signal?.aborted) {
        interrupted = true;
        break;
      }
      const pos = this.state.data;
      if (orderEpoch !== pos.epoch) {
        order = epochBatches(this.options.train.length, a.batchSize, a.seed, pos.epoch, a.shuffle);
        orderEpoch = pos.epoch;
      }
      const window = order!.slice(pos.batchInEpoch, pos.batchInEpoch + a.gradAccum);
      const info = await this.step(window.map((idx) => collate(idx.map((i) => this.options.train[i]!), this.options.padId)));
      lossTotal += info.loss;
      pos.batchInEpoch += window.length;
      let epochEnded = false;
      if (pos.batchInEpoch >= order!.length) {
        pos.epoch += 1;
        pos.batchInEpoch = 0;
        epochEnded = true;
      }
      this.state.epoch = pos.epoch + pos.batchInEpoch / this.batchesPerEpoch;
      this.pendingLosses.push(info.loss);
      this.options.callbacks?.onStep?.({ ...info, windowLoss: this.pendingLosses.reduce((s, l) => s + l, 0) / this.pendingLosses.length });
      const step = this.state.globalStep;
      if (step % a.loggingSteps === 0 || step === this.state.maxSteps) {
        const loss = this.pendingLosses.reduce((s, l) => s + l, 0) / this.pendingLosses.length;
        this.pendingLosses = [];
        await this.log({ loss, grad_norm: info.gradNorm, learning_rate: info.lr, epoch: this.state.epoch, step });
      }
      const evalNow = evalStrategy === 'steps' ? step % a.evalSteps === 0 : evalStrategy === 'epoch' && epochEnded;
      if (evalNow && this.options.eval?.length) {
        stoppedEarly = await this.logEvaluation();
        lastEvalStep = step;
      }
      const saveNow = saveStrategy === 'steps' ? step % a.saveSteps === 0 && step < this.state.maxSteps : saveStrategy === 'epoch' && epochEnded;
      if (saveNow) {
        await this.saveCheckpoint();
        lastSaveStep = step;
      }
      if (stoppedEarly) break;
    }
    const ranSteps = this.state.globalStep - firstStep;
    const runtimeSeconds = (performance.now() - started) / 1000;
    if (interrupted) {
      await this.saveCheckpoint();
    } else {
      if (this.options.eval?.length && lastEvalStep !== this.state.globalStep) await this.logEvaluation();
      // With best-model tracking the last step gets a checkpoint too, so that best_model_checkpoint always exists.
      if (metricForBestModelOf(a) !== null && saveStrategy !== 'no' && lastSaveStep !== this.state.globalStep) await this.saveCheckpoint();
      const best = this.state.bestGlobalStep;
      if (a.loadBestModelAtEnd && best != null && best !== this.state.globalStep) {
        await assignParametersFromFile(this.params, join(out, `checkpoint-${best}`, 'adapter_model.safetensors'));
      }
      await this.log({
        train_runtime: runtimeSeconds,
        train_steps_per_second: ranSteps / runtimeSeconds,
        train_loss: ranSteps > 0 ? lossTotal / ranSteps : null,
        epoch: this.state.epoch,
        step: this.state.globalStep,
      });
      await writingTo(out, () => this.options.model.savePretrained(out));
      await this.writeJson('trainer_state.json', trainerStateJson(this.state, a));
    }
    return { state: this.state, interrupted, trainLoss: ranSteps > 0 ? lossTotal / ranSteps : NaN, runtimeSeconds };
  }

  /** One optimizer step over the micro-batches of one accumulation window. */
  private async step(batches: Batch[]): Promise<StepInfo> {
    const t0 = performance.now();
    const targets = batches.reduce((s, b) => s + b.targetTokens, 0);
    const lr = this.scheduler.lr;
    this.options.dropout?.setTraining(true);
    this.optimizer.prefetchState();
    const { loss, gradNorm } = await scopeAsync(async () => {
      let loss = 0;
      for (const b of batches) {
        if (b.targetTokens === 0) continue;
        const batchLoss = this.options.model.runLoss(modelInput(b));
        const value = await batchLoss.item();
        if (!Number.isFinite(value)) throw await this.nonFinite(`the loss is ${value}`);
        // Each micro-batch's mean loss weighted by its share of the window's targets: the window's token mean.
        const weight = b.targetTokens / targets;
        await this.backwardAccumulating(weight === 1 ? batchLoss : mulScalar(batchLoss, weight));
        loss += value * weight;
      }
      const gradNorm = this.args.maxGradNorm > 0 ? await clipGradNorm(this.params.values(), this.args.maxGradNorm) : null;
      if (gradNorm !== null && !Number.isFinite(gradNorm)) throw await this.nonFinite(`the gradient norm is ${gradNorm}`);
      this.optimizer.lr = lr;
      this.optimizer.step();
      this.optimizer.zeroGrad();
      return { loss, gradNorm };
    });
    this.scheduler.step();
    this.state.globalStep += 1;
    const tokens = batches.reduce((s, b) => s + b.tokens, 0);
    this.state.numInputTokensSeen += tokens;
    return { step: this.state.globalStep, maxSteps: this.state.maxSteps, loss, gradNorm, lr, tokens, seconds: (performance.now() - t0) / 1000 };
  }

  /**
   * The error that stops training before a step whose loss or gradient is not finite would change the adapter, so
   * nothing of it is saved; the message names the step and the last checkpoint before it.
   */
  private async nonFinite(what: string): Promise<TrainingError> {
    const step = this.state.globalStep + 1;
    const earlier = (await checkpointSteps(this.args.outputDir)).filter((s) => s < step);
    const resume = earlier.length ? `, or resume from ${join(this.args.outputDir, `${CHECKPOINT_PREFIX}${earlier.at(-1)}`)}` : '';
    return new TrainingError(`Training stopped at step ${step}: ${what}, so this step was not applied and nothing of it was saved; lower the learning rate, check the data and the model's weights for extreme or NaN values${resume}.`);
  }

  /** A JSON file of the run folder, written atomically; a full disk is reported by path. */
  private async writeJson(name: string, value: unknown): Promise<void> {
    const path = join(this.args.outputDir, name);
    await writingTo(path, () => writeJsonFile(path, value));
  }

  /** backward() that adds to gradients already held, disposing the partial sums it replaces. */
  private async backwardAccumulating(loss: Tensor): Promise<void> {
    const held = new Map<Tensor, Tensor>();
    for (const p of this.params.values()) {
      if (p.grad) held.set(p, p.grad);
      p.grad = null;
    }
    await loss.backward();
    for (const [p, before] of held) {
      if (!p.grad) {
        p.grad = before;
        continue;
      }
      const sum = add(before, p.grad).keep();
      before.dispose();
      p.grad.dispose();
      p.grad = sum;
    }
  }

  /** Token-weighted mean loss over the evaluation set (dropout off, no graph), or null without one. */
  async evaluate(): Promise<number | null> {
    const examples = this.options.eval;
    if (!examples?.length) return null;
    this.options.dropout?.setTraining(false);
    let total = 0;
    let targets = 0;
    await noGradAsync(async () => {
      for (let i = 0; i < examples.length; i += this.args.batchSize) {
        const b = collate(examples.slice(i, i + this.args.batchSize), this.options.padId);
        if (b.targetTokens === 0) continue;
        const loss = await scopeAsync(async () => this.options.model.runLoss(modelInput(b)).item());
        total += loss * b.targetTokens;
        targets += b.targetTokens;
      }
    });
    return targets > 0 ? total / targets : null;
  }

  /** Evaluates, logs, then applies early stopping and best-model selection; true when training should stop. */
  private async logEvaluation(): Promise<boolean> {
    const t0 = performance.now();
    const evalLoss = await this.evaluate();
    const entry: LogEntry = { eval_loss: evalLoss, eval_runtime: (performance.now() - t0) / 1000, epoch: this.state.epoch, step: this.state.globalStep };
    await this.log(entry);
    const metric = metricForBestModelOf(this.args);
    if (metric === null) return false;
    const key = metric.startsWith('eval_') ? metric : `eval_${metric}`;
    if (!(key in entry)) throw new Error(`metric_for_best_model "${metric}" is not among the evaluation metrics (${Object.keys(entry).filter((k) => k.startsWith('eval_')).join(', ')}).`);
    const value = entry[key];
    if (typeof value !== 'number') return false;
    const greater = greaterIsBetterOf(this.args);
    const better = (x: number, y: number) => (greater ? x > y : x < y);
    const s = this.state;
    let stop = false;
    // EarlyStoppingCallback.on_evaluate runs first, against the best metric before this evaluation.
    const patience = this.args.earlyStoppingPatience;
    if (patience != null) {
      const threshold = this.args.earlyStoppingThreshold ?? 0;
      if (s.bestMetric == null || (better(value, s.bestMetric) && Math.abs(value - s.bestMetric) > threshold)) s.earlyStoppingPatienceCounter = 0;
      else s.earlyStoppingPatienceCounter = (s.earlyStoppingPatienceCounter ?? 0) + 1;
      stop = s.earlyStoppingPatienceCounter >= patience;
    }
    // Trainer._determine_best_metric.
    if (better(value, s.bestMetric ?? (greater ? -Infinity : Infinity))) {
      s.bestMetric = value;
      s.bestGlobalStep = s.globalStep;
      const out = this.args.outputDir;
      s.bestModelCheckpoint = `${out}${out.endsWith('/') ? '' : '/'}checkpoint-${s.globalStep}`;
    }
    return stop;
  }

  private async log(entry: LogEntry): Promise<void> {
    this.state.logHistory.push(entry);
    const metrics = join(this.args.outputDir, METRICS_FILE);
    await writingTo(metrics, () => appendFile(metrics, `${JSON.stringify(entry)}\n`));
    await this.tensorboard?.log(entry, this.state.globalStep);
    this.options.callbacks?.onLog?.(entry);
  }

  /** Writes checkpoint-<step> atomically: adapter, optimizer, scheduler, RNG and data position. */
  async saveCheckpoint(): Promise<string> {
    const final = join(this.args.outputDir, `${CHECKPOINT_PREFIX}${this.state.globalStep}`);
    const dir = await writingTo(final, () => writeCheckpointDir(
      this.args.outputDir,
      this.state.globalStep,
      async (tmp) => {
        await this.options.model.savePretrained(tmp);
        await saveOptimizerState(join(tmp, 'optimizer.safetensors'), this.optimizer);
        await writeJsonFile(join(tmp, 'scheduler.json'), this.scheduler.stateDict());
        await writeJsonFile(join(tmp, 'rng_state.json'), { dropout: this.options.dropout?.rng.getState() ?? null, pending_losses: this.pendingLosses });
        await writeJsonFile(join(tmp, 'trainer_state.json'), trainerStateJson(this.state, this.args));
        await writeJsonFile(join(tmp, 'training_args.json'), trainingArgsJson(this.args, this.options.argsJsonExtra));
      },
      this.options.beforeCheckpointRename,
    ));
    await pruneCheckpoints(this.args.outputDir, this.args.saveTotalLimit, this.state.bestGlobalStep ?? null);
    this.options.callbacks?.onSave?.(dir);
    return dir;
  }

  /**
   * Restores a checkpoint's adapter, optimizer, scheduler, generator and position, after checking that each file
   * belongs to this run: every field valid, the scheduler at the checkpoint's step, the data position inside an
   * epoch of this data. Each failure is one sentence naming the file and field.
   */
  private async loadCheckpoint(dir: string): Promise<void> {
    const file = (name: string) => join(dir, name);
    const saved = parseTrainerState(await readJsonObject(file('trainer_state.json'), DAMAGED_CHECKPOINT), file('trainer_state.json'));
    if (saved.data.batchInEpoch >= this.batchesPerEpoch) {
      throw new TrainingError(
        `${file('trainer_state.json')}: "data_position.batch_in_epoch" is ${saved.data.batchInEpoch}, but an epoch of this data has ${this.batchesPerEpoch} micro-batches; resume with the data and --batch-size it was trained with.`,
      );
    }
    const scheduler = new JsonFields(file('scheduler.json'), await readJsonObject(file('scheduler.json'), DAMAGED_CHECKPOINT), DAMAGED_CHECKPOINT);
    // Only the position is restored: the schedule is rebuilt from the run's arguments, which flags given with
    // --resume may change (--max-steps extends a run); scheduler.json's other fields record it for readers.
    const stepCount = scheduler.integer('step_count');
    if (stepCount !== saved.globalStep) scheduler.fail('step_count', `is ${stepCount}, but trainer_state.json's global_step is ${saved.globalStep}`);
    const rng = new JsonFields(file('rng_state.json'), await readJsonObject(file('rng_state.json'), DAMAGED_CHECKPOINT), DAMAGED_CHECKPOINT);
    const pendingLosses = rng.numbers('pending_losses', []);
    const dropoutState = this.options.dropout ? generatorState(rng) : null;
    await assignParametersFromFile(this.params, file('adapter_model.safetensors'));
    const device = this.params.values().next().value!.device;
    await loadOptimizerState(file('optimizer.safetensors'), this.optimizer, device);
    this.scheduler.loadStateDict({ step_count: stepCount });
    if (dropoutState) this.options.dropout!.rng.setState(dropoutState);
    this.pendingLosses = pendingLosses;
    Object.assign(this.state, { ...saved, maxSteps: this.state.maxSteps });
  }
}

/** A micro-batch as the model takes it: ids, labels, the padding mask and the segments of packed rows. */
function modelInput(b: Batch): CausalLMInput & { labels: number[][] } {
  return { inputIds: b.inputIds, labels: b.labels, attentionMask: b.attentionMask, ...(b.segmentLengths ? { segmentLengths: b.segmentLengths } : {}) };
}

/** rng_state.json's "dropout": the four 32-bit words of the dropout generator (xoshiro128**, never all zero). */
function generatorState(rng: JsonFields): number[] {
  const words = rng.get('dropout');
  if (!Array.isArray(words) || words.length !== 4 || !words.every((w) => Number.isInteger(w) && w >= 0 && w < 2 ** 32) || words.every((w) => w === 0)) {
    rng.fail('dropout', `must be the dropout generator's four 32-bit words, not ${JSON.stringify(words ?? null).slice(0, 60)}`);
  }
  return words as number[];
}
