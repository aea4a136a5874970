export { generate, generateDetailed, type GenerateOptions, type GenerationResult, type FinishReason } from './generate.js';
export { pickToken, applyRepetitionPenalty, argmax, type SamplingOptions } from './sampling.js';
