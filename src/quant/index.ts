export { QuantError } from './errors.js';
export { NF4_BLOCKSIZES, NF4_CODE, dequantizeNf4, quantizeNf4, type Nf4Quantized } from './nf4.js';
export { createDynamicMap } from './dynamic-map.js';
export { BLOCKWISE_BLOCKSIZES, dequantizeBlockwise, quantizeBlockwise, type BlockwiseQuantized } from './blockwise.js';
export {
  NESTED_BLOCKSIZE,
  NESTED_CODE,
  dequantizeNestedAbsmax,
  doubleQuantizeAbsmax,
  type DoubleQuantizedAbsmax,
} from './double-quant.js';
export {
  dequantizeNf4Weight,
  nf4BlockAbsmax,
  quantizeNf4Weight,
  type HostFloatData,
  type Nf4Absmax,
  type Nf4QuantState,
  type Nf4SourceDType,
  type Nf4Weight,
  type QuantizeNf4WeightOptions,
} from './nf4-weight.js';
export {
  parseQuantState,
  quantStateTensorNames,
  serializeQuantState,
  type NamedRawTensor,
  type RawTensor,
} from './quant-state.js';
export { DeviceNf4Weight, type Nf4WeightBytes } from './device-nf4-weight.js';
export { Linear4bit, type ComputeDType, type Linear4bitOptions } from './linear4bit.js';
export { bnbQuantizationConfigMember, parseBnbQuantConfig, quantizedConfigJson, type BnbQuantConfig } from './bnb-config.js';
export { bnbLinearLoader, registerBitsandbytesLoader } from './bnb-loader.js';
export { isDecoderProjection, isDecoderProjectionWeight } from './projections.js';
export { hostFloatData, quantizeLinearsInPlace, type QuantizeLinearsOptions } from './quantize-in-place.js';
export { loadIn4bit, quantizeOnLoadLinearLoader } from './load-in-4bit.js';
export { Nf4ExpertWeight, quantizeExpertsInPlace } from './nf4-experts.js';
export { quantizeModel, type QuantizeModelOptions, type QuantizeModelResult } from './quantize-model.js';
export { quantMemoryReport, type QuantMemoryReport } from './memory-report.js';
export { mergeQloraToDense, type MergedLayerError, type MergeQloraOptions, type QloraMergeReport, type QloraMergeResult } from './merge-qlora.js';
export { saveQuantizedPretrained, type SaveQuantizedOptions } from './save-quantized.js';

import { registerBitsandbytesLoader } from './bnb-loader.js';
import { registerLoftqNf4 } from './loftq-hook.js';

registerBitsandbytesLoader();
registerLoftqNf4();
