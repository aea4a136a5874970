import type { CausalLM } from '../models/causal-lm.js';
import { MoeExperts, SparseMoeBlock, type ExpertWeightName, type QuantizedExpertWeight } from '../models/moe.js';
import { cat, narrow, reshape } from '../ops/index.js';
import type { DType } from '../tensor/dtype.js';
import { noGrad } from '../tensor/grad-mode.js';
import { scopeAsync } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { DeviceNf4Weight } from './device-nf4-weight.js';
import { QuantError } from './errors.js';
import { quantizeNf4Weight, type Nf4SourceDType } from './nf4-weight.js';
import { hostFloatData, type QuantizeLinearsOptions } from './quantize-in-place.js';

/**
 * An expert weight [E, d1, d2] as E separate NF4 weights [d1, d2], each expert's matrix quantized on its own
 * (blocks never span two experts), dequantized and stacked for every forward as Linear4bit dequantizes its weight.
 */
export class Nf4ExpertWeight implements QuantizedExpertWeight {
  constructor(
    private readonly experts: readonly DeviceNf4Weight[],
    readonly shape: readonly number[],
  ) {}

  dequantize(dtype: DType): Tensor {
    if (dtype !== 'float32' && dtype !== 'bfloat16' && dtype !== 'float16') throw new QuantError(`NF4 experts dequantize to a float dtype, not ${dtype}.`);
    const [, d1, d2] = this.shape as [number, number, number];
    return noGrad(() => cat(this.experts.map((w) => reshape(w.dequantize(dtype as Nf4SourceDType), [1, d1, d2])), 0));
  }

  dispose(): void {
    for (const w of this.experts) w.dispose();
  }
}

/**
 * QLoRA on a mixture-of-experts model: every sparse layer's experts.gate_up_proj and experts.down_proj become
 * per-expert NF4 weights (blocksize and double quantization as for the projections), quantized from the weight's
 * own dtype on its device; the dense weights are freed. Routers and expert biases stay dense. Returns the number of
 * expert matrices quantized.
 */
export async function quantizeExpertsInPlace(model: CausalLM, options: QuantizeLinearsOptions = {}): Promise<number> {
  let count = 0;
  for (const [, m] of model.namedModules()) {
    if (!(m instanceof SparseMoeBlock) || !(m.experts instanceof MoeExperts)) continue;
    const experts = m.experts;
    for (const name of ['gate_up_proj', 'down_proj'] as const satisfies readonly ExpertWeightName[]) {
      const dense = experts.denseWeight(name, 'be quantized again');
      const [E, d1, d2] = dense.shape as [number, number, number];
      const parts: DeviceNf4Weight[] = [];
      // The slices are views of the dense weight: the scope frees them so that the weight's memory goes with it.
      await scopeAsync(async () => {
        for (let e = 0; e < E; e++) {
          const slice = reshape(narrow(dense, 0, e, 1), [d1, d2]);
          const q = quantizeNf4Weight(await hostFloatData(slice), [d1, d2], { blocksize: options.blocksize ?? 64, doubleQuant: options.doubleQuant ?? true });
          parts.push(new DeviceNf4Weight(q, dense.device));
        }
      });
      experts.quantizeWeight(name, new Nf4ExpertWeight(parts, dense.shape));
      count += E;
    }
  }
  return count;
}
