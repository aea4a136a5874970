// Llama-family models with random weights of real shapes, built directly on a CUDA device: dense weights are
// filled by the device's counter-based generator (no file, no host copy); 4-bit weights are random NF4 codes with
// double-quantized scales in bitsandbytes' layout, generated on the device one projection at a time.
import { getBackend } from '../src/backend/registry.js';
import { CudaBackend } from '../src/backend/cuda/cuda-backend.js';
import { cudaRandomFill, type RandomDistribution } from '../src/backend/cuda/random-fill.js';
import { parseLlamaConfig, type LlamaConfig } from '../src/models/config.js';
import { LlamaAttention, LlamaDecoderLayer, LlamaForCausalLM, LlamaMLP, LlamaModel } from '../src/models/llama.js';
import { Embedding, Linear, RMSNorm } from '../src/nn/layers.js';
import { ModuleList, type LinearLike } from '../src/nn/module.js';
import { full } from '../src/ops/index.js';
import { Linear4bit, NESTED_BLOCKSIZE, NESTED_CODE } from '../src/quant/index.js';
import type { DType } from '../src/tensor/dtype.js';
import { Tensor } from '../src/tensor/tensor.js';

/** The fields of config.json that set a Llama model's shapes. */
export interface LlamaShape {
  readonly hidden_size: number;
  readonly num_hidden_layers: number;
  readonly num_attention_heads: number;
  readonly num_key_value_heads: number;
  readonly intermediate_size: number;
  readonly vocab_size: number;
  readonly tie_word_embeddings: boolean;
}

export function llamaConfig(shape: LlamaShape): LlamaConfig {
  return parseLlamaConfig({
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    max_position_embeddings: 131072,
    ...shape,
  });
}

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

  dense(outFeatures: number, inFeatures: number, dtype: DType): Linear {
    return new Linear(this.tensor([outFeatures, inFeatures], dtype, { kind: 'normal', mean: 0, std: INIT_STD }));
  }

  /** Random bytes generated on the device and read back (the 4-bit layer's constructor takes host arrays). */
  private async bytes(n: number): Promise<Uint8Array> {
    const t = this.tensor([n], 'uint8', { kind: 'bytes' });
    const host = (await this.backend.toHost(t.buffer, 0, n)) as Uint8Array;
    t.dispose();
    return host;
  }

  /** A 4-bit layer with random NF4 codes and double-quantized scales (blocksize 64, nested 256), bf16 compute. */
  async nf4(outFeatures: number, inFeatures: number): Promise<Linear4bit> {
    const numel = outFeatures * inFeatures;
    const blocks = Math.ceil(numel / NF4_BLOCKSIZE);
    const nestedBlocks = Math.ceil(blocks / NESTED_BLOCKSIZE);
    return new Linear4bit(
      {
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
      },
      { computeDtype: 'bfloat16', device: this.device },
    );
  }
}

/**
 * A LlamaForCausalLM of `config` with random weights on `device` in `dtype`, frozen, as buildLlama makes it.
 * With `nf4`, the seven decoder projections of every layer are 4-bit (QLoRA's base); embeddings, norms and the
 * lm_head stay dense, as transformers' load_in_4bit leaves them.
 */
export async function randomLlama(config: LlamaConfig, options: { device: string; dtype: DType; nf4: boolean; seed?: number }): Promise<LlamaForCausalLM> {
  const c = config;
  const { device, dtype } = options;
  const w = new RandomWeights(device, options.seed ?? 1);
  const proj = async (outF: number, inF: number): Promise<LinearLike> => (options.nf4 ? w.nf4(outF, inF) : w.dense(outF, inF, dtype));
  const norm = () => new RMSNorm(full([c.hiddenSize], 1, { dtype, device }), c.rmsNormEps);
  const embed = new Embedding(w.tensor([c.vocabSize, c.hiddenSize], dtype, { kind: 'normal', mean: 0, std: INIT_STD }));
  const qOut = c.numAttentionHeads * c.headDim;
  const kvOut = c.numKeyValueHeads * c.headDim;
  const layers: LlamaDecoderLayer[] = [];
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const attn = new LlamaAttention(c, i, {
      q: await proj(qOut, c.hiddenSize),
      k: await proj(kvOut, c.hiddenSize),
      v: await proj(kvOut, c.hiddenSize),
      o: await proj(c.hiddenSize, qOut),
    });
    const mlp = new LlamaMLP({
      gate: await proj(c.intermediateSize, c.hiddenSize),
      up: await proj(c.intermediateSize, c.hiddenSize),
      down: await proj(c.hiddenSize, c.intermediateSize),
    });
    layers.push(new LlamaDecoderLayer(attn, mlp, norm(), norm()));
  }
  const lmHead = c.tieWordEmbeddings ? null : w.dense(c.vocabSize, c.hiddenSize, dtype);
  const model = new LlamaForCausalLM(c, new LlamaModel(embed, new ModuleList(layers), norm()), lmHead, dtype, device);
  model.requiresGrad_(false);
  return model;
}
