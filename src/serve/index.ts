export { createServer, type RunningServer } from './server.js';
export { SERVER_DEFAULTS, type AdapterSpec, type ServerOptions } from './server-options.js';
export { Scheduler, type DecoderModel, type SchedulerOptions } from './scheduler.js';
export type { SequenceOutcome, SequenceRequest, FinishReason } from './sequence.js';
export type { SamplingParams } from './generation-params.js';
export { ApiError, type ApiErrorBody } from './api-error.js';
export type { AdapterBackend } from './adapter-backend.js';
export { ServeOptionError } from './serve-option-error.js';
