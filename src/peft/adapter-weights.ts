import { fromHost, zeros } from '../ops/index.js';
import type { Rng } from '../tensor/random.js';
import type { InitLoraWeights } from './config.js';
import { initialLoraA, initialLoraB } from './init.js';
import type { LoraAdapterSettings, LoraAdapterWeights } from './lora-linear.js';

/** One layer about to receive an adapter. */
export interface AdapterTarget {
  readonly path: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly settings: LoraAdapterSettings;
  /** "embedding": PEFT's lora.Embedding (inFeatures is the vocabulary, outFeatures the embedding width). */
  readonly kind?: 'linear' | 'embedding';
  /** An expert parameter (PEFT's ParamWrapper): A [r x experts, in] and B [out, r x experts], experts stacked. */
  readonly experts?: number;
}

/** The rows of A (columns of B): r, or r x experts for an expert parameter. */
export function factorRank(target: AdapterTarget): number {
  return target.settings.r * (target.experts ?? 1);
}

/** Makes an adapter's tensors for one layer. New adapters are float32 whatever the base dtype (PEFT's autocast_adapter_dtype). */
export type AdapterWeightsFactory = (target: AdapterTarget) => LoraAdapterWeights;

/** Fresh trainable weights drawn from `rng` in layer order (PEFT's init_lora_weights). */
export function initialWeights(init: InitLoraWeights, rng: Rng, device: string): AdapterWeightsFactory {
  return (target) => {
    const { inFeatures, outFeatures, settings: { r, loraBias }, kind } = target;
    if (kind === 'embedding') return initialEmbeddingWeights(init, rng, device, r, inFeatures, outFeatures);
    const rows = factorRank(target);
    return {
      a: fromHost(initialLoraA(init, rows, inFeatures, rng, r), [rows, inFeatures], 'float32', device),
      b: fromHost(initialLoraB(init, rows, outFeatures, rng), [outFeatures, rows], 'float32', device),
      bBias: loraBias ? zeros([outFeatures], { device }) : null,
      magnitude: null,
    };
  };
}

/**
 * Zeros of the right shapes. With `magnitude` false, DoRA's magnitude is left for the layer to compute from the
 * base weight (what PEFT does for an adapter it fills in afterwards); with true it is zeros too (values to be loaded).
 */
export function zeroWeights(device: string, options: { magnitude: boolean }): AdapterWeightsFactory {
  return (target) => {
    const { inFeatures, outFeatures, settings: { loraBias, useDora } } = target;
    const rows = factorRank(target);
    return {
      a: zeros([rows, inFeatures], { device }),
      b: zeros([outFeatures, rows], { device }),
    bBias: loraBias ? zeros([outFeatures], { device }) : null,
      magnitude: useDora && options.magnitude ? zeros([outFeatures], { device }) : null,
    };
  };
}

/**
 * PEFT's lora.Embedding init: with init_lora_weights true or "gaussian", A zeros and B ~ N(0, 1) (loralib's choice);
 * with false both keep their torch.randn draw.
 */
function initialEmbeddingWeights(init: InitLoraWeights, rng: Rng, device: string, r: number, vocab: number, dim: number): LoraAdapterWeights {
  const normal = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  const a = init === false ? normal(r * vocab) : new Float32Array(r * vocab);
  return { a: fromHost(a, [r, vocab], 'float32', device), b: fromHost(normal(dim * r), [dim, r], 'float32', device), bBias: null, magnitude: null };
}
