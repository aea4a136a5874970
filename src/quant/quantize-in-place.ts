import { Linear } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import { backendOf, contiguous } from '../ops/index.js';
import type { Tensor } from '../tensor/tensor.js';
import { QuantError } from './errors.js';
import { Linear4bit, type ComputeDType } from './linear4bit.js';
import { quantizeNf4Weight, type HostFloatData } from './nf4-weight.js';
import { isDecoderProjection } from './projections.js';

export interface QuantizeLinearsOptions {
  /** Elements per absmax block; default 64 (what transformers + bitsandbytes use). */
  blocksize?: number;
  /** Double-quantize the absmax values (bnb_4bit_use_double_quant); default true. */
  doubleQuant?: boolean;
  /** dtype the 4-bit layers multiply in; default bfloat16. */
  computeDtype?: ComputeDType;
}

/** A floating weight's values on the host in its own dtype (bfloat16/float16 as raw bits, no rounding). */
export async function hostFloatData(t: Tensor): Promise<HostFloatData> {
  const c = contiguous(t);
  const data = await backendOf(c).toHost(c.buffer, c.offset, c.numel);
  if (t.dtype === 'float32') return { dtype: 'float32', data: data as Float32Array };
  if (t.dtype === 'bfloat16' || t.dtype === 'float16') return { dtype: t.dtype, data: data as Uint16Array };
  throw new QuantError(`Only floating weights can be quantized to 4 bits; this one is ${t.dtype}.`);
}

/**
 * Replaces every dense decoder projection (q/k/v/o, gate/up/down) of a loaded model with a Linear4bit quantized
 * from the weight's own dtype (load the model in bfloat16 to match transformers' load_in_4bit), on the weight's
 * device, and frees the dense weight. Biases stay dense. This is `train --qlora` on an already-loaded model; the
 * lm_head and embeddings stay dense, as in transformers. Returns the number of layers replaced.
 */
export async function quantizeLinearsInPlace(model: Module, options: QuantizeLinearsOptions = {}): Promise<number> {
  const targets = [...model.namedModules()].filter(([path, m]) => m instanceof Linear && isDecoderProjection(path));
  for (const [path, m] of targets) {
    const dense = m as Linear;
    const quantized = quantizeNf4Weight(await hostFloatData(dense.weight), dense.weight.shape, {
      blocksize: options.blocksize ?? 64,
      doubleQuant: options.doubleQuant ?? true,
    });
    const layer = new Linear4bit(quantized, { bias: dense.bias, computeDtype: options.computeDtype ?? 'bfloat16', device: dense.weight.device });
    const cut = path.lastIndexOf('.');
    model.getSubmodule(path.slice(0, cut)).replaceChild(path.slice(cut + 1), layer);
    dense.weight.dispose();
  }
  return targets.length;
}
