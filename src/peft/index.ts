/** LoRA fine-tuning with PEFT's semantics, names and file layout. */
export { getPeftModel, getPeftModelAsync, PeftModel, LoraModel, type AddWeightedAdapterOptions, type FromPretrainedOptions, type LoadAdapterOptions, type SavePretrainedOptions } from './peft-model.js';
export { resolveLoraConfig, loraScaling, type InitLoraWeights, type LoftqConfig, type LoraBias, type LoraConfig, type ResolvedLoraConfig, type TargetModules } from './config.js';
export { loraConfigToJson, parseAdapterConfig, readAdapterConfig, ADAPTER_CONFIG_NAME } from './config-json.js';
export { ADAPTER_WEIGHTS_NAME } from './adapter-files.js';
export { modelCardText, MODEL_CARD_NAME } from './model-card.js';
export { ADAPTER_KEY_PREFIX } from './adapter-state.js';
export { LoraLinear, type LoraAdapterSettings, type LoraAdapterWeights } from './lora-linear.js';
export { ModulesToSaveWrapper } from './modules-to-save.js';
export type { DequantizingLinear } from './base-weight.js';
export { saveModelPretrained, type SaveModelOptions } from './export-checkpoint.js';
export { formatTrainableParameters, type ParameterCounts } from './trainable.js';
export { COMBINATION_TYPES, type CombinationType, type MajoritySignMethod, type SvdDriver } from './weighted-adapter.js';
export { BASE_ADAPTER_NAME } from './runtime-state.js';
export { PeftError } from './errors.js';
