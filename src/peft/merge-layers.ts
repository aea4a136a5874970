import { Linear } from '../nn/layers.js';
import type { LinearLike } from '../nn/module.js';
import { add, mulScalar, to } from '../ops/index.js';
import { noGrad } from '../tensor/grad-mode.js';
import { scope } from '../tensor/scope.js';
import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { isDequantizing, type DequantizingLinear } from './base-weight.js';
import { PeftError } from './errors.js';
import type { LoraLinear } from './lora-linear.js';

/** A quantized base (quant/'s Linear4bit) that can be re-created from a dense weight with its own settings. */
export interface RequantizingLinear extends DequantizingLinear {
  /** The weight dequantized to `dtype`; bitsandbytes' dequantize gives the dtype it was quantized from. */
  dequantizedWeight(dtype?: DType): Tensor;
  readonly weight4bit: { readonly sourceDType: DType; dispose(): void };
  requantized(weight: Tensor): Promise<LinearLike>;
}

function dequantizedF32(layer: RequantizingLinear): Tensor {
  return noGrad(() => to(layer.dequantizedWeight(layer.weight4bit.sourceDType), { dtype: 'float32' }).keep());
}

export function isRequantizing(layer: LinearLike): layer is RequantizingLinear {
  return isDequantizing(layer) && 'requantized' in layer && typeof (layer as { requantized?: unknown }).requantized === 'function';
}

async function allFinite(t: Tensor): Promise<boolean> {
  const data = await t.data();
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) return false;
  return true;
}

/**
 * PEFT's safe_merge for one layer: computes, adapter after adapter, the float32 weight (and bias) that merging
 * `names` would give, and throws, before anything is written, if any is NaN or infinite.
 */
export async function assertFiniteMerge(layer: LoraLinear, names: readonly string[]): Promise<void> {
  const base = layer.base_layer;
  const dense = base instanceof Linear ? base : isDequantizing(base) ? null : undefined;
  if (dense === undefined) return; // layer.merge refuses it with its own message
  // `to` returns the base weight itself when it is float32 already: that one is never disposed here.
  let weight: Tensor;
  let owned = true;
  if (dense) {
    weight = noGrad(() => to(dense.weight, { dtype: 'float32' }));
    owned = weight !== dense.weight;
    if (owned) weight.keep();
  } else {
    weight = isRequantizing(base) ? dequantizedF32(base) : noGrad(() => scope(() => to((base as DequantizingLinear).dequantizedWeight(), { dtype: 'float32' })).keep());
  }
  let bias = dense ? dense.bias : (base as DequantizingLinear).bias;
  try {
    for (const name of names) {
      const s = layer.settingsOf(name);
      if (!s) continue;
      const next = noGrad(() => scope(() => layer.mergedWeight(name, weight).weight)).keep();
      if (owned) weight.dispose();
      weight = next;
      owned = true;
      let finite = await allFinite(weight);
      if (finite && s.loraBias && bias) {
        const nextBias = noGrad(() => add(to(bias!, { dtype: 'float32' }), mulScalar(layer.lora_B.get(name)!.bias!, s.scaling)));
        finite = await allFinite(nextBias);
        bias = nextBias;
      }
      if (!finite) throw new PeftError(`NaNs or infinities detected in the merged weights of ${layer.path} for adapter "${name}"; the adapter seems to be broken, so nothing was merged.`);
    }
  } finally {
    if (owned) weight.dispose();
  }
}

/**
 * Merges `names` into a LoRA layer whose base is quantized, as PEFT's bnb Linear4bit.merge does: per adapter,
 * dequantize, add the delta in float32, quantize again with the same blocksize and double quantization. Returns the
 * original quantized base, which unmerging puts back (exactly, where PEFT would subtract and quantize once more).
 */
export async function mergeIntoQuantized(layer: LoraLinear, names: readonly string[]): Promise<LinearLike> {
  const original = layer.base_layer as RequantizingLinear;
  let current: RequantizingLinear = original;
  for (const name of names) {
    if (!layer.hasAdapter(name)) continue;
    const dense = noGrad(() => new Linear(dequantizedF32(current), current.bias));
    layer.replaceChild('base_layer', dense);
    layer.merge([name]);
    const next = (await current.requantized(dense.weight)) as RequantizingLinear;
    dense.weight.dispose();
    layer.replaceChild('base_layer', next);
    if (current !== original) disposeQuantized(current);
    current = next;
  }
  return original;
}

/** Undoes mergeIntoQuantized: clears the layer's merge record on a throwaway dense base, then restores `original`. */
export function unmergeFromQuantized(layer: LoraLinear, original: LinearLike): void {
  const merged = layer.base_layer as RequantizingLinear;
  const dense = noGrad(() => new Linear(dequantizedF32(merged), merged.bias));
  layer.replaceChild('base_layer', dense);
  layer.unmerge();
  dense.weight.dispose();
  layer.replaceChild('base_layer', original);
  if (merged !== original) disposeQuantized(merged);
}

function disposeQuantized(layer: RequantizingLinear): void {
  layer.weight4bit.dispose();
}
