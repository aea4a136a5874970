/**
 * loraforge: LoRA and QLoRA fine-tuning of Hugging Face causal language models in TypeScript.
 * The public API speaks transformers' and PEFT's vocabulary.
 */
import './ops/index.js';
import './generate/index.js';
import { registerCudaBackend } from './backend/cuda/index.js';

registerCudaBackend();

export { Tensor } from './tensor/tensor.js';
export type { DType } from './tensor/dtype.js';
export { noGrad, noGradAsync, isGradEnabled } from './tensor/grad-mode.js';
export { scope, scopeAsync } from './tensor/scope.js';
export { Rng } from './tensor/random.js';
export * as ops from './ops/index.js';
export type { Backend } from './backend/backend.js';
export { getBackend, registerBackend, registerBackendFactory } from './backend/registry.js';
export { CudaUnavailableError, cudaDriverMissingReason } from './backend/cuda/index.js';

export { Module, ModuleList, type LinearLike, type ForwardContext } from './nn/module.js';
export { Linear, Embedding, RMSNorm } from './nn/layers.js';

export { SafetensorsFile } from './io/safetensors.js';
export { openCheckpoint } from './io/checkpoint.js';
export { writeSafetensors } from './io/safetensors-writer.js';
export { resolvePretrained, resolveHubDataset } from './io/hub.js';
export { FormatError } from './io/errors.js';

export { AutoModelForCausalLM } from './models/auto.js';
export type { FromPretrainedOptions } from './models/build.js';
export { CausalLM, type CausalLMInput, type CausalLMOutput } from './models/causal-lm.js';
export {
  loadConfig,
  parseModelConfig,
  ConfigError,
  SUPPORTED_ARCHITECTURES,
  type AttnImplementation,
  type ConfigOptions,
  type LayerType,
  type ModelConfig,
  type ModelFamily,
} from './models/config.js';
export { KvCache, KvPool, KV_BLOCK_SIZE, type KvPoolOptions, type KvPrefix } from './models/kv-cache.js';
export { KvBlockTable, KvPoolFullError, prefixBlockHashes } from './models/kv-blocks.js';

export {
  AutoTokenizer,
  PreTrainedTokenizer,
  TokenizerError,
  type ChatMessage,
  type ChatTemplateOptions,
  type EncodeOptions,
  type DecodeOptions,
} from './tokenizer/index.js';

export * from './quant/index.js';
export { generate, generateDetailed, type GenerateOptions, type GenerationResult } from './generate/index.js';

export {
  getPeftModel,
  getPeftModelAsync,
  PeftModel,
  PeftError,
  LoraLinear,
  saveModelPretrained,
  BASE_ADAPTER_NAME,
  type LoraConfig,
  type CombinationType,
  type FromPretrainedOptions as PeftFromPretrainedOptions,
  type LoadAdapterOptions,
  type SavePretrainedOptions,
  type SaveModelOptions,
} from './peft/index.js';

export {
  AdamW,
  clipGradNorm,
  LrScheduler,
  lrMultiplier,
  resolveLrSchedule,
  warmupStepsFor,
  LR_SCHEDULER_TYPES,
  loraplusParamGroups,
  type AdamWOptions,
  type AdamWParamGroup,
  type AdamWParamState,
  type LrScheduleOptions,
  type LrSchedulerType,
  type LrSchedulerKwargs,
  type WsdShape,
  type LoraPlusOptions,
} from './optim/index.js';
export type { PagedStateOptions } from './optim/paged-state.js';

export {
  DataError,
  readJsonl,
  DATA_FORMATS,
  detectFormat,
  normalizeRecord,
  tokenizeExample,
  IGNORE_INDEX,
  packExamples,
  collate,
  prepareDataset,
  describeSummary,
  parseColumnMapping,
  readParquetRows,
  type ColumnMapping,
  type HubDatasetOptions,
  type JsonlContents,
  type JsonlRecord,
  type SkippedLine,
  type DataFormat,
  type NormalizedExample,
  type DataTokenizer,
  type TokenizedExample,
  type TokenizeOptions,
  type Batch,
  type DatasetOptions,
  type PreparedData,
  type PreparedSplit,
  type DataSummary,
} from './data/index.js';

export {
  Trainer,
  DEFAULT_TRAINING_ARGUMENTS,
  peftDropoutControl,
  enableGradientCheckpointing,
  latestCheckpoint,
  type StepInfo,
  type TrainerCallbacks,
  type TrainerOptions,
  type TrainResult,
  type TrainingArguments,
  type TrainerState,
  type LogEntry,
  type DataPosition,
  type TrainableModel,
  type DropoutControl,
} from './train/index.js';
export type { IntervalStrategy } from './train/training-args.js';

export { createServer, SERVER_DEFAULTS, type RunningServer, type AdapterSpec, type ServerOptions } from './serve/index.js';
export type { AdapterBackend } from './serve/adapter-backend.js';
