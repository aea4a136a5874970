export { AdamW, type AdamWOptions, type AdamWParamGroup, type AdamWParamState } from './adamw.js';
export { adamwUpdate, type AdamWArgs } from './adamw-update.js';
export { clipGradNorm } from './clip-grad.js';
export { LrScheduler, lrMultiplier, resolveLrSchedule, warmupStepsFor, LR_SCHEDULER_TYPES, type LrScheduleOptions, type LrSchedulerKwargs, type LrSchedulerType, type WsdShape } from './lr-schedule.js';
export { saveOptimizerState, loadOptimizerState } from './optimizer-state-file.js';
export { loraplusParamGroups, type LoraPlusOptions } from './loraplus.js';
export { OPTIM_NAMES, optimizerSettings, type OptimName } from './optim-names.js';
