/**
 * Learning-rate schedules with linear warmup, as transformers' get_*_schedule_with_warmup define them: the
 * multiplier of the base rate at optimizer step `step` (0-based; the first update uses step 0, so with warmup
 * it runs at rate 0, exactly as the transformers Trainer does).
 */
export const LR_SCHEDULER_TYPES = ['constant', 'constant_with_warmup', 'linear', 'cosine', 'cosine_with_min_lr', 'polynomial', 'warmup_stable_decay'] as const;
export type LrSchedulerType = (typeof LR_SCHEDULER_TYPES)[number];

export interface LrScheduleOptions {
  type: LrSchedulerType;
  warmupSteps: number;
  /** Total optimizer steps of the run (the decaying schedules reach their end there). */
  totalSteps: number;
  /** Cosine only: transformers' num_cycles; the default 0.5 is one half-wave, from 1 down to 0. */
  numCycles?: number;
  /** cosine_with_min_lr: the floor as a fraction of the base rate (LrScheduler derives it from min_lr). */
  minLrRate?: number;
  /** polynomial: the base rate (lr_init), the end rate (lr_end, default 1e-7) and the power (default 1). */
  lrInit?: number;
  lrEnd?: number;
  power?: number;
  /** warmup_stable_decay: phase lengths, shapes (default linear warmup, cosine decay) and floor ratio. */
  numStableSteps?: number;
  numDecaySteps?: number;
  warmupType?: WsdShape;
  decayType?: WsdShape;
  minLrRatio?: number;
}

export type WsdShape = 'linear' | 'cosine' | '1-sqrt';
const WSD_SHAPES: readonly WsdShape[] = ['linear', 'cosine', '1-sqrt'];

/** transformers' lr_scheduler_kwargs, by the names get_scheduler's schedule functions take. */
export interface LrSchedulerKwargs {
  num_cycles?: number;
  min_lr?: number;
  min_lr_rate?: number;
  power?: number;
  lr_end?: number;
  num_stable_steps?: number;
  num_decay_steps?: number;
  warmup_type?: WsdShape;
  decay_type?: WsdShape;
  min_lr_ratio?: number;
}

const KWARGS_OF: Record<LrSchedulerType, readonly string[]> = {
  constant: [],
  constant_with_warmup: [],
  linear: [],
  cosine: ['num_cycles'],
  cosine_with_min_lr: ['num_cycles', 'min_lr', 'min_lr_rate'],
  polynomial: ['power', 'lr_end'],
  warmup_stable_decay: ['num_stable_steps', 'num_decay_steps', 'warmup_type', 'decay_type', 'min_lr_ratio', 'num_cycles'],
};

/**
 * The schedule get_scheduler(name, optimizer, num_warmup_steps, num_training_steps, scheduler_specific_kwargs) builds,
 * with its checks: cosine_with_min_lr needs exactly one of min_lr / min_lr_rate (min_lr_rate = min_lr / lr);
 * polynomial needs lr > lr_end; warmup_stable_decay needs num_decay_steps, and its stable phase is
 * num_stable_steps or else num_training_steps - num_warmup_steps - num_decay_steps.
 */
export function resolveLrSchedule(type: LrSchedulerType, baseLr: number, warmupSteps: number, totalSteps: number, kwargs: LrSchedulerKwargs = {}): LrScheduleOptions {
  if (!(LR_SCHEDULER_TYPES as readonly string[]).includes(type)) throw new Error(`Unknown lr_scheduler_type "${type}"; supported: ${LR_SCHEDULER_TYPES.join(', ')}.`);
  const unknown = Object.keys(kwargs).filter((k) => !KWARGS_OF[type].includes(k));
  if (unknown.length) throw new Error(`lr_scheduler_kwargs ${unknown.map((k) => `"${k}"`).join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not taken by the ${type} schedule${KWARGS_OF[type].length ? ` (it takes ${KWARGS_OF[type].join(', ')})` : ' (it takes none)'}.`);
  const o: LrScheduleOptions = { type, warmupSteps, totalSteps };
  if (kwargs.num_cycles !== undefined) o.numCycles = kwargs.num_cycles;
  if (type === 'cosine_with_min_lr') {
    if (kwargs.min_lr !== undefined && kwargs.min_lr_rate !== undefined) throw new Error('Only one of min_lr or min_lr_rate should be set (lr_scheduler_kwargs of cosine_with_min_lr).');
    if (kwargs.min_lr === undefined && kwargs.min_lr_rate === undefined) throw new Error('cosine_with_min_lr needs min_lr or min_lr_rate in lr_scheduler_kwargs.');
    o.minLrRate = kwargs.min_lr !== undefined ? kwargs.min_lr / baseLr : kwargs.min_lr_rate!;
  } else if (type === 'polynomial') {
    o.lrInit = baseLr;
    o.lrEnd = kwargs.lr_end ?? 1e-7;
    o.power = kwargs.power ?? 1.0;
    if (!(baseLr > o.lrEnd)) throw new Error(`polynomial: lr_end (${o.lrEnd}) must be smaller than the initial lr (${baseLr}).`);
  } else if (type === 'warmup_stable_decay') {
    if (kwargs.num_decay_steps === undefined) throw new Error('warmup_stable_decay needs num_decay_steps in lr_scheduler_kwargs.');
    for (const [k, v] of [['warmup_type', kwargs.warmup_type], ['decay_type', kwargs.decay_type]] as const) {
      if (v !== undefined && !WSD_SHAPES.includes(v)) throw new Error(`Unknown ${k} "${v}"; expected linear, cosine or 1-sqrt.`);
    }
    o.numDecaySteps = kwargs.num_decay_steps;
    o.numStableSteps = kwargs.num_stable_steps ?? totalSteps - warmupSteps - kwargs.num_decay_steps;
    o.warmupType = kwargs.warmup_type ?? 'linear';
    o.decayType = kwargs.decay_type ?? 'cosine';
    o.minLrRatio = kwargs.min_lr_ratio ?? 0;
  }
  return o;
}

/** transformers' TrainingArguments.get_warmup_steps: warmup_steps when positive, else ceil(ratio * total steps). */
export function warmupStepsFor(totalSteps: number, warmupSteps: number, warmupRatio = 0): number {
  if (!(warmupRatio >= 0 && warmupRatio <= 1)) throw new Error(`warmup_ratio must lie in [0, 1]; got ${warmupRatio}.`);
  return warmupSteps > 0 ? warmupSteps : Math.ceil(totalSteps * warmupRatio);
}

export function lrMultiplier(step: number, o: LrScheduleOptions): number {
  if (o.type === 'constant') return 1;
  if (o.type === 'warmup_stable_decay') return wsdMultiplier(step, o);
  if (step < o.warmupSteps) return step / Math.max(1, o.warmupSteps);
  const span = Math.max(1, o.totalSteps - o.warmupSteps);
  switch (o.type) {
    case 'constant_with_warmup':
      return 1;
    case 'linear':
      return Math.max(0, (o.totalSteps - step) / span);
    case 'cosine': {
      const progress = (step - o.warmupSteps) / span;
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * (o.numCycles ?? 0.5) * 2 * progress)));
    }
    case 'cosine_with_min_lr': {
      const progress = (step - o.warmupSteps) / span;
      const rate = o.minLrRate ?? 0;
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * (o.numCycles ?? 0.5) * 2 * progress)) * (1 - rate) + rate);
    }
    case 'polynomial': {
      const lrInit = o.lrInit ?? 1;
      const lrEnd = o.lrEnd ?? 1e-7;
      if (step > o.totalSteps) return lrEnd / lrInit;
      const pctRemaining = 1 - (step - o.warmupSteps) / (o.totalSteps - o.warmupSteps);
      return ((lrInit - lrEnd) * pctRemaining ** (o.power ?? 1) + lrEnd) / lrInit;
    }
  }
}

/** transformers' _get_wsd_scheduler_lambda. */
function wsdMultiplier(step: number, o: LrScheduleOptions): number {
  const minRatio = o.minLrRatio ?? 0;
  const stable = o.numStableSteps ?? 0;
  const decay = o.numDecaySteps ?? 0;
  const shape = (type: WsdShape, progress: number, rising: boolean): number => {
    if (type === 'linear') return rising ? progress : 1 - progress;
    if (type === 'cosine') return rising ? 0.5 * (1 - Math.cos(Math.PI * progress)) : 0.5 * (1 + Math.cos(Math.PI * (o.numCycles ?? 0.5) * 2 * progress));
    return rising ? 1 - Math.sqrt(1 - progress) : 1 - Math.sqrt(progress);
  };
  if (step < o.warmupSteps) return Math.max(0, shape(o.warmupType ?? 'linear', step / Math.max(1, o.warmupSteps), true) * (1 - minRatio) + minRatio);
  if (step < o.warmupSteps + stable) return 1;
  if (step < o.warmupSteps + stable + decay) {
    const progress = (step - o.warmupSteps - stable) / Math.max(1, decay);
    return Math.max(0, shape(o.decayType ?? 'cosine', progress, false) * (1 - minRatio) + minRatio);
  }
  return minRatio;
}

/** torch's LambdaLR over lrMultiplier: `lr` is the rate for the next optimizer step; step() advances it. */
export class LrScheduler {
  /** Optimizer steps taken so far (torch's last_epoch). */
  stepCount = 0;
  constructor(
    readonly baseLr: number,
    readonly options: LrScheduleOptions,
  ) {}

  get lr(): number {
    return this.baseLr * lrMultiplier(this.stepCount, this.options);
  }

  step(): void {
    this.stepCount += 1;
  }

  stateDict(): { step_count: number; base_lr: number } & LrScheduleOptions {
    return { step_count: this.stepCount, base_lr: this.baseLr, ...this.options };
  }

  loadStateDict(state: { step_count: number }): void {
    this.stepCount = state.step_count;
  }
}
