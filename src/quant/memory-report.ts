import type { Module } from '../nn/module.js';
import { bytesPerElement } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { Linear4bit } from './linear4bit.js';

/** Device bytes a (possibly 4-bit) model's weights occupy, by role. */
export interface QuantMemoryReport {
  /** Number of Linear4bit layers. */
  readonly quantizedLayers: number;
  /** Weight elements stored in 4 bits. */
  readonly quantizedParameters: number;
  /** Packed NF4 codes: half a byte per quantized parameter. */
  readonly packedWeightBytes: number;
  /** Per-block scales (float32, or 8-bit codes with nested scales), and code tables. */
  readonly quantConstantBytes: number;
  /** Frozen parameters that are not 4-bit: embeddings, norms, lm_head, dense linears, biases. */
  readonly frozenParameterBytes: number;
  /** Parameters with requiresGrad (LoRA adapters while training). */
  readonly trainableParameterBytes: number;
  /** Sum of the four byte counts above. */
  readonly totalBytes: number;
}

function tensorBytes(t: Tensor): number {
  return t.numel * bytesPerElement(t.dtype);
}

/**
 * Counts every Linear4bit (wherever it sits, e.g. as a LoRA base_layer) and every registered parameter once.
 * The 4-bit weights are buffers, not parameters, so the parameter walk never counts them twice.
 */
export function quantMemoryReport(model: Module): QuantMemoryReport {
  let quantizedLayers = 0;
  let quantizedParameters = 0;
  let packedWeightBytes = 0;
  let quantConstantBytes = 0;
  for (const [, m] of model.namedModules()) {
    if (!(m instanceof Linear4bit)) continue;
    const bytes = m.quantizedBytes();
    quantizedLayers++;
    quantizedParameters += m.weight4bit.numel;
    packedWeightBytes += bytes.packed;
    quantConstantBytes += bytes.constants;
  }
  let frozenParameterBytes = 0;
  let trainableParameterBytes = 0;
  const seen = new Set<Tensor>();
  for (const [, p] of model.namedParameters()) {
    if (seen.has(p)) continue;
    seen.add(p);
    if (p.requiresGrad) trainableParameterBytes += tensorBytes(p);
    else frozenParameterBytes += tensorBytes(p);
  }
  return {
    quantizedLayers,
    quantizedParameters,
    packedWeightBytes,
    quantConstantBytes,
    frozenParameterBytes,
    trainableParameterBytes,
    totalBytes: packedWeightBytes + quantConstantBytes + frozenParameterBytes + trainableParameterBytes,
  };
}
