import { parseModelConfig } from '../models/config.js';
import { CausalLM } from '../models/causal-lm.js';
import { Linear } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import { to } from '../ops/index.js';
import type { LoraLinear } from '../peft/lora-linear.js';
import { loraLayers, modulesToSaveWrappers } from '../peft/module-walk.js';
import { noGrad } from '../tensor/grad-mode.js';
import type { Tensor } from '../tensor/tensor.js';
import { bnbQuantizationConfigMember } from './bnb-config.js';
import { QuantError } from './errors.js';
import { Linear4bit, type ComputeDType } from './linear4bit.js';
import { dequantizeNf4Weight, quantizeNf4Weight, toFloat32 } from './nf4-weight.js';
import { hostFloatData, type QuantizeLinearsOptions } from './quantize-in-place.js';

export interface MergeQloraOptions {
  /** Adapters to fold in, in this order; default every adapter of each layer. */
  adapterNames?: readonly string[];
  /** dtype of the merged weights; default bfloat16, what users deploy. */
  dtype?: ComputeDType;
  /** Quantize the merged projections to NF4 again (true: blocksize 64, double quant, bf16 compute). */
  requantize?: boolean | QuantizeLinearsOptions;
}

/** Error budget of one merged layer. */
export interface MergedLayerError {
  readonly path: string;
  /** max |W_merged - (W_dequant + delta)_fp32| over the layer's elements. */
  readonly maxAbsError: number;
  /** maxAbsError / max |(W_dequant + delta)_fp32|. */
  readonly maxRelativeError: number;
  /** max |dequant(NF4(W_merged)) - W_merged| when re-quantized, else null. */
  readonly requantMaxAbsError: number | null;
}

export interface QloraMergeReport {
  readonly layers: readonly MergedLayerError[];
  /** The worst layer's values. */
  readonly maxAbsError: number;
  readonly maxRelativeError: number;
  readonly requantMaxAbsError: number | null;
}

export interface QloraMergeResult {
  /** The merged model: dense projections, or NF4 ones when re-quantized; no LoRA layers. */
  readonly model: CausalLM;
  readonly report: QloraMergeReport;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function replaceAt(root: Module, path: string, m: Module): void {
  const cut = path.lastIndexOf('.');
  root.getSubmodule(path.slice(0, Math.max(cut, 0))).replaceChild(path.slice(cut + 1), m);
}

/** The base weight in float32: a 4-bit one dequantized to the dtype it was quantized from (what training saw). */
function baseWeightF32(base: Module, path: string): Tensor {
  if (base instanceof Linear4bit) return to(base.dequantizedWeight(base.weight4bit.sourceDType), { dtype: 'float32' });
  if (base instanceof Linear) return to(base.weight, { dtype: 'float32' });
  throw new QuantError(`Cannot merge the adapter of ${path}: its base layer is a ${base.constructor.name}, not a Linear or Linear4bit.`);
}

/**
 * Folds one LoRA layer into a plain layer. PEFT's merge runs on a float32 copy of the base weight, which gives the
 * reference (W_dequant + delta)_fp32; the merged weight is that rounded to `dtype`, and re-quantized when asked.
 */
async function mergeLayer(path: string, layer: LoraLinear, options: MergeQloraOptions, dtype: ComputeDType): Promise<{ merged: Module; error: MergedLayerError }> {
  const base: Module = layer.base_layer;
  const bias = base instanceof Linear4bit || base instanceof Linear ? base.bias : null;
  const work = noGrad(() => new Linear(baseWeightF32(base, path), bias ? to(bias, { dtype: 'float32' }) : null));
  layer.replaceChild('base_layer', work);
  layer.merge(options.adapterNames ?? layer.adapterNames());
  const reference = toFloat32(await hostFloatData(work.weight));
  const weight = noGrad(() => to(work.weight, { dtype }));
  const mergedValues = toFloat32(await hostFloatData(weight));
  const mergedBias = work.bias && bias ? noGrad(() => to(work.bias!, { dtype: bias.dtype })) : null;
  const maxAbsError = maxAbsDiff(mergedValues, reference);
  const scale = reference.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

  let merged: Module = new Linear(weight, mergedBias);
  let requantMaxAbsError: number | null = null;
  if (options.requantize && base instanceof Linear4bit) {
    const q = options.requantize === true ? {} : options.requantize;
    const nf4 = quantizeNf4Weight(await hostFloatData(weight), weight.shape, { blocksize: q.blocksize ?? 64, doubleQuant: q.doubleQuant ?? true });
    requantMaxAbsError = maxAbsDiff(toFloat32(dequantizeNf4Weight(nf4)), mergedValues);
    merged = new Linear4bit(nf4, { bias: mergedBias, computeDtype: q.computeDtype ?? 'bfloat16', device: weight.device });
    weight.dispose();
  }
  if (base instanceof Linear4bit) base.weight4bit.dispose();
  for (const [, t] of layer.namedParameters()) if (t !== weight && t !== mergedBias) t.dispose();
  return { merged, error: { path, maxAbsError, maxRelativeError: scale > 0 ? maxAbsError / scale : 0, requantMaxAbsError } };
}

/** config.json of the merged model: no quantization_config, or transformers' 4-bit block when re-quantized. */
function mergedConfig(model: CausalLM, options: MergeQloraOptions): CausalLM['config'] {
  const raw: Record<string, unknown> = { ...model.config.raw };
  delete raw['quantization_config'];
  if (options.requantize) {
    const q = options.requantize === true ? {} : options.requantize;
    const member = bnbQuantizationConfigMember({ doubleQuant: q.doubleQuant ?? true, computeDtype: q.computeDtype ?? 'bfloat16' });
    raw['quantization_config'] = (JSON.parse(`{${member}}`) as Record<string, unknown>)['quantization_config'];
  }
  return parseModelConfig(raw);
}

/**
 * Merges the LoRA adapters of a QLoRA model (4-bit base + adapters) for deployment: each adapted projection is
 * dequantized, PEFT-merged in float32 and rounded to `dtype` (bfloat16 by default); the report gives the rounding
 * error against the float32 merge. Without `requantize`, every other 4-bit projection is dequantized too, so the
 * result is a plain dense model (saveable with saveModelPretrained); with it, the merged projections are quantized
 * to NF4 again and the others keep their 4-bit weights. The input model is consumed: its layers move into the result
 * and the LoRA and 4-bit tensors are freed. Peak extra memory: one layer in float32.
 */
export async function mergeQloraToDense(model: CausalLM, options: MergeQloraOptions = {}): Promise<QloraMergeResult> {
  const dtype = options.dtype ?? 'bfloat16';
  const adapted = loraLayers(model);
  if (adapted.length === 0) throw new QuantError('The model has no LoRA layers to merge; attach or load an adapter first.');
  const layers: MergedLayerError[] = [];
  for (const { path, layer } of adapted) {
    const { merged, error } = await mergeLayer(path, layer, options, dtype);
    replaceAt(model, path, merged);
    layers.push(error);
  }
  for (const { path, wrapper } of modulesToSaveWrappers(model)) replaceAt(model, path, wrapper.layerInUse());
  if (!options.requantize) {
    for (const [path, m] of [...model.namedModules()]) {
      if (!(m instanceof Linear4bit)) continue;
      replaceAt(model, path, new Linear(m.dequantizedWeight(dtype), m.bias));
      m.weight4bit.dispose();
    }
  }
  const requantErrors = layers.flatMap((l) => (l.requantMaxAbsError === null ? [] : [l.requantMaxAbsError]));
  const report: QloraMergeReport = {
    layers,
    maxAbsError: Math.max(...layers.map((l) => l.maxAbsError)),
    maxRelativeError: Math.max(...layers.map((l) => l.maxRelativeError)),
    requantMaxAbsError: requantErrors.length > 0 ? Math.max(...requantErrors) : null,
  };
  const merged = new CausalLM(mergedConfig(model, options), model.model, model.lm_head, model.dtype, model.device);
  return { model: merged, report };
}
