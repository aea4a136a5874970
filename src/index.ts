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
export { resolvePretrained } from './io/hub.js';
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
export { KvCache, KvPool, KV_BLOCK_SIZE } from './models/kv-cache.js';

export { AutoTokenizer, PreTrainedTokenizer, TokenizerError, type ChatMessage } from './tokenizer/index.js';

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
