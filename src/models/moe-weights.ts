import { FormatError } from '../io/errors.js';
import { tensorFile, type TensorSource } from '../io/tensor-source.js';
import { fromHost, narrow, reshape } from '../ops/index.js';
import type { HostArray } from '../tensor/buffer.js';
import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ModelConfig } from './config.js';
import { moeLayerTensors, type StoredMoeTensor } from './layout.js';
import { MoeExperts, MoeRouter, SparseMoeBlock } from './moe.js';
import { dequantizeMxfp4 } from './mxfp4.js';
import { convertHost, loadHostTensor } from './weights.js';

/** Shapes of the fused parameters transformers 5.17 computes with (MoeExperts), per target. */
export function fusedShape(c: ModelConfig, target: StoredMoeTensor['target']): number[] {
  const { numExperts: E, expertIntermediateSize: I } = c.moe!;
  const H = c.hiddenSize;
  const gpt = c.moe!.family === 'gpt_oss';
  switch (target) {
    case 'weight':
      return [E, H];
    case 'bias':
      return [E];
    case 'gate_up_proj':
      return gpt ? [E, H, 2 * I] : [E, 2 * I, H];
    case 'down_proj':
      return gpt ? [E, I, H] : [E, H, I];
    case 'gate_up_proj_bias':
      return [E, 2 * I];
    case 'down_proj_bias':
      return [E, H];
  }
}

/** An MXFP4 parameter (its blocks read before `scales`, the tensor `scalesName`) as [E, in, out] in `dtype`. */
function decodeMxfp4(source: TensorSource, scalesName: string, blocks: Uint8Array, scales: Uint8Array, scalesShape: readonly number[], dtype: DType): { data: HostArray } {
  const [experts, rows, groups] = scalesShape as [number, number, number];
  if (scales.length !== experts * rows * groups || blocks.length !== scales.length * 16) {
    const file = tensorFile(source, scalesName);
    throw new FormatError(file, `${file}: the MXFP4 blocks and scales of "${scalesName}" hold ${blocks.length} and ${scales.length} bytes, but the config implies ${experts * rows * groups * 16} and ${experts * rows * groups}; the weights do not belong to this config.json.`);
  }
  const values = dequantizeMxfp4(blocks, scales, experts, rows, groups);
  if ('nanScaleAt' in values) {
    const file = tensorFile(source, scalesName);
    throw new FormatError(file, `${file}: tensor "${scalesName}" holds the E8M0 NaN scale 255 at block ${values.nanScaleAt}; the MXFP4 weights are corrupt, so download them again.`);
  }
  return { data: convertHost(values, 'float32', dtype) };
}

/** Raw host storage of `n` elements of a float dtype (bfloat16/float16 as 16-bit patterns). */
function hostStorage(dtype: DType, n: number): HostArray {
  return dtype === 'float32' ? new Float32Array(n) : new Uint16Array(n);
}

/**
 * Loads one sparse layer (checkpoint names under `layerPrefix`, "model.layers.3"): the router, and the experts
 * assembled on the host into the fused parameters, Mixtral's w1/w3 and Qwen3-MoE's gate_proj/up_proj becoming
 * rows [0, I) and [I, 2I) of expert e's gate_up_proj slice as transformers' checkpoint conversion does.
 */
export async function loadSparseMoeBlock(c: ModelConfig, source: TensorSource, layerPrefix: string, dtype: DType, device: string): Promise<SparseMoeBlock> {
  const moe = c.moe!;
  const fused = new Map<StoredMoeTensor['target'], { data: HostArray; shape: number[] }>();
  let blocks: Uint8Array | null = null;
  for (const t of moeLayerTensors(c)) {
    const shape = fusedShape(c, t.target);
    let slot = fused.get(t.target);
    if (!slot) {
      slot = { data: hostStorage(dtype, shape.reduce((a, b) => a * b, 1)), shape };
      fused.set(t.target, slot);
    }
    const name = `${layerPrefix}.${t.path}`;
    if (t.encoding === 'mxfp4-blocks') {
      blocks = await source.read(name);
      continue;
    }
    const { data } = t.encoding === 'mxfp4-scales' ? decodeMxfp4(source, name, blocks!, await source.read(name), t.shape, dtype) : await loadHostTensor(source, name, dtype, t.shape);
    const perExpert = slot.data.length / moe.numExperts;
    const at = t.expert === null ? 0 : t.expert * perExpert + (t.part === 'up' ? perExpert / 2 : 0);
    (slot.data as Float32Array).set(data as Float32Array, at);
  }
  const tensor = (target: StoredMoeTensor['target']): Tensor | null => {
    const slot = fused.get(target);
    return slot ? fromHost(slot.data, slot.shape, dtype, device) : null;
  };
  const router = new MoeRouter(tensor('weight')!, tensor('bias'));
  const experts = new MoeExperts(moe, c.hiddenAct, {
    gateUp: tensor('gate_up_proj')!,
    down: tensor('down_proj')!,
    gateUpBias: tensor('gate_up_proj_bias'),
    downBias: tensor('down_proj_bias'),
  });
  return new SparseMoeBlock(moe, router, experts);
}

/**
 * The checkpoint tensors of a sparse block, the inverse of loadSparseMoeBlock: [path under the layer, tensor] in
 * checkpoint order, each expert's w1/w3/w2 (gate_proj/up_proj/down_proj) a view of its rows of the fused parameters.
 */
export function storedMoeTensors(c: ModelConfig, router: MoeRouter, experts: MoeExperts): [string, Tensor][] {
  const params: Record<StoredMoeTensor['target'], Tensor | null> = {
    weight: router.weight,
    bias: router.bias,
    gate_up_proj: experts.denseWeight('gate_up_proj', 'be saved'),
    down_proj: experts.denseWeight('down_proj', 'be saved'),
    gate_up_proj_bias: experts.gate_up_proj_bias,
    down_proj_bias: experts.down_proj_bias,
  };
  if (c.moe!.expertFormat !== 'float') throw new Error(`storedMoeTensors: the experts of this ${c.architecture} are stored as ${c.moe!.expertFormat}, which has no float checkpoint names.`);
  return moeLayerTensors(c).map((t) => {
    const whole = params[t.target]!;
    if (t.expert === null) return [t.path, whole];
    const slice = narrow(whole, 0, t.expert, 1);
    const rows = t.part === 'all' ? slice : narrow(slice, 1, t.part === 'gate' ? 0 : t.shape[0]!, t.shape[0]!);
    return [t.path, reshape(rows, t.shape)];
  });
}
