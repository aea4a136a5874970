// Models of any supported family with random weights of real shapes, built directly on a CUDA device: dense weights are
// filled by the device's counter-based generator (no file, no host copy); 4-bit weights are random NF4 codes with
// double-quantized scales in bitsandbytes' layout, generated on the device one projection at a time.
import { getBackend } from '../src/backend/registry.js';
import { CudaBackend } from '../src/backend/cuda/cuda-backend.js';
import { cudaRandomFill, type RandomDistribution } from '../src/backend/cuda/random-fill.js';
import type { ModelConfig } from '../src/models/config.js';
import type { TensorSource } from '../src/io/tensor-source.js';
import { buildCausalLM, type LinearLoader, type MoeBlockLoader, type WeightLoader } from '../src/models/build.js';
import type { CausalLM } from '../src/models/causal-lm.js';
import { checkpointLayout, checkpointName, moeLayerTensors, type StoredMoeTensor } from '../src/models/layout.js';
import { MoeExperts, MoeRouter, SparseMoeBlock } from '../src/models/moe.js';
import { fusedShape } from '../src/models/moe-weights.js';
import { Linear } from '../src/nn/layers.js';
import { full } from '../src/ops/index.js';
import { DeviceNf4Weight, Linear4bit, NESTED_BLOCKSIZE, NESTED_CODE, Nf4ExpertWeight, type Nf4Weight } from '../src/quant/index.js';
import type { DType } from '../src/tensor/dtype.js';
import { Tensor } from '../src/tensor/tensor.js';

/** Standard deviation of dense weights (transformers' initializer_range). */
const INIT_STD = 0.02;
/** NF4 block scales: offset + nestedAbsmax * code, with codes over the signed dynamic map, lie in [0.02, 0.06]: weights of std ~0.02. */
const NF4_SCALE_OFFSET = 0.04;
const NF4_NESTED_ABSMAX = 0.02;
const NF4_BLOCKSIZE = 64;

export class RandomWeights {
  private seed: number;
  constructor(
    readonly device: string,
    seed: number,
  ) {
    this.seed = seed;
  }

  private get backend(): CudaBackend {
    const backend = getBackend(this.device);
    if (!(backend instanceof CudaBackend)) throw new Error(`Random weights are generated on CUDA devices; "${this.device}" is not one.`);
    return backend;
  }

  /** A fresh tensor filled on the device; each call draws from a new seed. */
  tensor(shape: readonly number[], dtype: DType, dist: RandomDistribution): Tensor {
    const n = shape.reduce((p, d) => p * d, 1);
    const buffer = this.backend.alloc(dtype, n);
    cudaRandomFill(this.backend.runtime, buffer, n, this.seed++, dist);
    return new Tensor(buffer, shape);
  }

  dense(outFeatures: number, inFeatures: number, dtype: DType, bias: Tensor | null = null): Linear {
    return new Linear(this.tensor([outFeatures, inFeatures], dtype, { kind: 'normal', mean: 0, std: INIT_STD }), bias);
  }

  /** Random bytes generated on the device and read back (the 4-bit layer's constructor takes host arrays). */
  private async bytes(n: number): Promise<Uint8Array> {
    const t = this.tensor([n], 'uint8', { kind: 'bytes' });
    const host = (await this.backend.toHost(t.buffer, 0, n)) as Uint8Array;
    t.dispose();
    return host;
  }

  /** A 4-bit layer with random NF4 codes and double-quantized scales (blocksize 64, nested 256), bf16 compute. */
  async nf4(outFeatures: number, inFeatures: number, bias: Tensor | null = null): Promise<Linear4bit> {
    return new Linear4bit(await this.nf4Weight(outFeatures, inFeatures), { computeDtype: 'bfloat16', device: this.device, bias });
  }

  /** Random NF4 experts [E, d1, d2]: one 4-bit weight per expert matrix, as quantizeExpertsInPlace makes them. */
  async nf4Experts(shape: readonly number[]): Promise<Nf4ExpertWeight> {
    const [E, d1, d2] = shape as [number, number, number];
    const parts: DeviceNf4Weight[] = [];
    for (let e = 0; e < E; e++) parts.push(new DeviceNf4Weight(await this.nf4Weight(d1, d2), this.device));
    return new Nf4ExpertWeight(parts, shape);
  }

  /** Random NF4 codes and double-quantized scales of an [outFeatures, inFeatures] weight. */
  private async nf4Weight(outFeatures: number, inFeatures: number): Promise<Nf4Weight> {
    const numel = outFeatures * inFeatures;
    const blocks = Math.ceil(numel / NF4_BLOCKSIZE);
    const nestedBlocks = Math.ceil(blocks / NESTED_BLOCKSIZE);
    return {
        packed: await this.bytes(Math.ceil(numel / 2)),
        state: {
          quantType: 'nf4',
          blocksize: NF4_BLOCKSIZE,
          dtype: 'bfloat16',
          shape: [outFeatures, inFeatures],
          absmax: {
            nested: true,
            codes: await this.bytes(blocks),
            nestedAbsmax: new Float32Array(nestedBlocks).fill(NF4_NESTED_ABSMAX),
            nestedCode: NESTED_CODE.slice(),
            nestedBlocksize: NESTED_BLOCKSIZE,
            offset: NF4_SCALE_OFFSET,
          },
        },
    };
  }
}

/**
 * A CausalLM of `config` (any supported family) with random weights on `device` in `dtype`, frozen, as
 * buildCausalLM makes it. With `nf4`, every decoder projection is 4-bit (QLoRA's base); embeddings, norms and the
 * lm_head stay dense, as transformers' load_in_4bit leaves them.
 */
export async function randomModel(config: ModelConfig, options: { device: string; dtype: DType; nf4: boolean; seed?: number }): Promise<CausalLM> {
  const { device, dtype } = options;
  const w = new RandomWeights(device, options.seed ?? 1);
  const names = new Set(checkpointLayout(config).map((t) => checkpointName(t, config.weightPrefix, config.lmHeadName)));
  const source: TensorSource = {
    names: () => [...names],
    has: (name) => names.has(name),
    info: (name) => {
      throw new Error(`randomModel generates ${name} on the device; it has no stored bytes.`);
    },
    read: async (name) => {
      throw new Error(`randomModel generates ${name} on the device; it has no stored bytes.`);
    },
    close: async () => {},
  };
  const normal = (shape: readonly number[]) => w.tensor(shape, dtype, { kind: 'normal', mean: 0, std: INIT_STD });
  const loadLinear: LinearLoader = async (ctx) => {
    const bias = ctx.bias ? normal([ctx.outFeatures]) : null;
    return options.nf4 ? w.nf4(ctx.outFeatures, ctx.inFeatures, bias) : w.dense(ctx.outFeatures, ctx.inFeatures, dtype, bias);
  };
  const loadWeight: WeightLoader = async (_name, shape, kind) => (kind === 'norm' ? full(shape, config.normPlusOne ? 0 : 1, { dtype, device }) : normal(shape));
  // Mixture-of-experts layers: the router and fused experts transformers computes with, random; with nf4 the
  // expert matrices are 4-bit per expert (QLoRA's layout) and the router and biases stay dense.
  const loadMoe: MoeBlockLoader = async () => {
    const moe = config.moe!;
    const targets = new Set(moeLayerTensors(config).map((t) => t.target));
    const dense = (target: StoredMoeTensor['target']) => (targets.has(target) ? normal(fusedShape(config, target)) : null);
    const experts = new MoeExperts(moe, config.hiddenAct, {
      gateUp: options.nf4 ? normal([1, 1, 1]) : dense('gate_up_proj')!,
      down: options.nf4 ? normal([1, 1, 1]) : dense('down_proj')!,
      gateUpBias: dense('gate_up_proj_bias'),
      downBias: dense('down_proj_bias'),
    });
    if (options.nf4) {
      experts.quantizeWeight('gate_up_proj', await w.nf4Experts(fusedShape(config, 'gate_up_proj')));
      experts.quantizeWeight('down_proj', await w.nf4Experts(fusedShape(config, 'down_proj')));
    }
    return new SparseMoeBlock(moe, new MoeRouter(dense('weight')!, dense('bias')), experts);
  };
  return buildCausalLM(config, source, dtype, device, loadLinear, loadWeight, loadMoe);
}
