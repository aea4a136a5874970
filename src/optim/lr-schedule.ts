/**
 * Learning-rate schedules with linear warmup, as transformers' get_*_schedule_with_warmup define them: the
 * multiplier of the base rate at optimizer step `step` (0-based; the first update uses step 0, so with warmup
 * it runs at rate 0, exactly as the transformers Trainer does).
 */
export const LR_SCHEDULER_TYPES = ['constant', 'constant_with_warmup', 'linear', 'cosine'] as const;
export type LrSchedulerType = (typeof LR_SCHEDULER_TYPES)[number];

export interface LrScheduleOptions {
  type: LrSchedulerType;
  warmupSteps: number;
  /** Total optimizer steps of the run (the decaying schedules reach their end there). */
  totalSteps: number;
  /** Cosine only: transformers' num_cycles; the default 0.5 is one half-wave, from 1 down to 0. */
  numCycles?: number;
}

export function lrMultiplier(step: number, o: LrScheduleOptions): number {
  if (o.type === 'constant') return 1;
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
  }
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
