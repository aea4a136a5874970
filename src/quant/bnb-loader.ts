import { tensorFile, type TensorSource } from '../io/tensor-source.js';
import { registerQuantizedLinearLoader, type LinearLoader } from '../models/build.js';
import type { StoredWeightCheck } from '../models/checkpoint-check.js';
import { assertFinite, loadTensor } from '../models/weights.js';
import { Linear } from '../nn/layers.js';
import { formatShape, numelOf, shapesEqual } from '../tensor/shape.js';
import { parseBnbQuantConfig, type BnbQuantConfig } from './bnb-config.js';
import { QuantError } from './errors.js';
import { Linear4bit } from './linear4bit.js';
import { parseQuantState, quantStateTensorNames, type RawTensor } from './quant-state.js';

/** Every stored tensor that belongs to the 4-bit weight `weightName` (absent ones are simply not in the map). */
async function readQuantTensors(source: TensorSource, weightName: string): Promise<Map<string, RawTensor>> {
  const tensors = new Map<string, RawTensor>();
  for (const name of quantStateTensorNames(weightName)) {
    if (!source.has(name)) continue;
    const { dtype, shape } = source.info(name);
    const data = await source.read(name);
    // The float parts (absmax, nested absmax, code maps) are small: one NaN there poisons a whole block of weights.
    assertFinite(tensorFile(source, name), name, dtype, data);
    tensors.set(name, { dtype, shape, data });
  }
  return tensors;
}

/**
 * Builds each projection of a transformers + bitsandbytes 4-bit checkpoint: a Linear4bit when the stored weight is
 * packed uint8 with its quant state, a dense Linear when the checkpoint kept it in floating point
 * (llm_int8_skip_modules). Biases are never quantized and load in the model's dtype.
 */
export function bnbLinearLoader(config: BnbQuantConfig): LinearLoader {
  return async (ctx) => {
    const name = `${ctx.prefix}.weight`;
    const expected = [ctx.outFeatures, ctx.inFeatures];
    const bias = ctx.bias ? await loadTensor(ctx.source, `${ctx.prefix}.bias`, ctx.dtype, ctx.device, [ctx.outFeatures]) : null;
    if (ctx.source.info(name).dtype !== 'uint8') {
      return new Linear(await loadTensor(ctx.source, name, ctx.dtype, ctx.device, expected), bias);
    }
    const file = tensorFile(ctx.source, name);
    const tensors = await readQuantTensors(ctx.source, name);
    const weight = parseQuantState(name, (n) => tensors.get(n), file);
    if (!shapesEqual(weight.state.shape, expected)) {
      throw new QuantError(
        `${file}: the 4-bit weight "${name}" has quant-state shape ${formatShape(weight.state.shape)}, but the config implies ${formatShape(expected)}; the weights do not belong to this config.json.`,
      );
    }
    return new Linear4bit(weight, { bias, computeDtype: config.computeDtype, device: ctx.device });
  };
}

/**
 * The header-only check of a packed 4-bit projection weight (see StoredWeightCheck): its packed bytes hold exactly
 * an [out, in] weight and a quant state comes with it. Returns the weight's tensors, which the checkpoint check
 * then does not report as unexpected; parseQuantState checks their contents when the weight is loaded.
 */
export const checkBnbStoredWeight: StoredWeightCheck = (source, weightName, [out, inFeatures]) => {
  const file = tensorFile(source, weightName);
  const { shape } = source.info(weightName);
  const packed = Math.ceil((out * inFeatures) / 2);
  if (numelOf(shape) !== packed) {
    throw new QuantError(`${file}: the 4-bit weight "${weightName}" has ${numelOf(shape)} packed bytes ${formatShape(shape)}, but the config implies [${out}, ${inFeatures}], which packs into ${packed}; the weights do not belong to this config.json.`);
  }
  const parts = quantStateTensorNames(weightName).filter((n) => source.has(n));
  if (!parts.some((n) => n.includes('.quant_state.'))) {
    throw new QuantError(`${file}: the 4-bit weight "${weightName}" is packed uint8 but has no "${weightName}.quant_state.bitsandbytes__nf4" tensor; save the checkpoint again with transformers and bitsandbytes.`);
  }
  return parts;
};

/**
 * Lets AutoModelForCausalLM.fromPretrained load checkpoints whose config.json has
 * quantization_config.quant_method "bitsandbytes". Idempotent; importing the quant package root calls it.
 */
export function registerBitsandbytesLoader(): void {
  registerQuantizedLinearLoader('bitsandbytes', (q, configPath) => bnbLinearLoader(parseBnbQuantConfig(q, configPath)), checkBnbStoredWeight);
}
