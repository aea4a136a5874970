import type { LlamaConfig } from '../models/config.js';
import type { TensorInfo, TensorSource } from '../io/tensor-source.js';
import { Rng } from '../tensor/random.js';

/**
 * The tensors of a Llama-family checkpoint for `config`, made up from a seed instead of read from disk: norms
 * are ones, every other weight is N(0, std^2). Each tensor's values depend only on (seed, name), so the same
 * seed always builds the same model, whatever order the loader asks in.
 */
export class RandomCheckpoint implements TensorSource {
  private readonly shapes = new Map<string, number[]>();

  constructor(
    config: LlamaConfig,
    private readonly seed: number,
    private readonly std: number,
  ) {
    const c = config;
    const q = c.numAttentionHeads * c.headDim;
    const kv = c.numKeyValueHeads * c.headDim;
    this.shapes.set('model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]);
    for (let i = 0; i < c.numHiddenLayers; i++) {
      const p = `model.layers.${i}`;
      this.shapes.set(`${p}.input_layernorm.weight`, [c.hiddenSize]);
      this.shapes.set(`${p}.self_attn.q_proj.weight`, [q, c.hiddenSize]);
      this.shapes.set(`${p}.self_attn.k_proj.weight`, [kv, c.hiddenSize]);
      this.shapes.set(`${p}.self_attn.v_proj.weight`, [kv, c.hiddenSize]);
      this.shapes.set(`${p}.self_attn.o_proj.weight`, [c.hiddenSize, q]);
      this.shapes.set(`${p}.post_attention_layernorm.weight`, [c.hiddenSize]);
      this.shapes.set(`${p}.mlp.gate_proj.weight`, [c.intermediateSize, c.hiddenSize]);
      this.shapes.set(`${p}.mlp.up_proj.weight`, [c.intermediateSize, c.hiddenSize]);
      this.shapes.set(`${p}.mlp.down_proj.weight`, [c.hiddenSize, c.intermediateSize]);
    }
    this.shapes.set('model.norm.weight', [c.hiddenSize]);
    if (!c.tieWordEmbeddings) this.shapes.set('lm_head.weight', [c.vocabSize, c.hiddenSize]);
  }

  names(): string[] {
    return [...this.shapes.keys()];
  }

  has(name: string): boolean {
    return this.shapes.has(name);
  }

  info(name: string): TensorInfo {
    const shape = this.shapes.get(name);
    if (!shape) throw new Error(`The random checkpoint has no tensor "${name}".`);
    const n = shape.reduce((a, b) => a * b, 1);
    return { name, dtype: 'float32', shape, dataOffset: 0, byteLength: n * 4 };
  }

  async read(name: string): Promise<Uint8Array> {
    const { byteLength } = this.info(name);
    const values = new Float32Array(byteLength / 4);
    if (name.endsWith('norm.weight')) values.fill(1);
    else {
      const rng = new Rng((this.seed ^ hashName(name)) >>> 0);
      for (let i = 0; i < values.length; i++) values[i] = rng.normal() * this.std;
    }
    return new Uint8Array(values.buffer);
  }

  async close(): Promise<void> {}
}

/** FNV-1a of the tensor name. */
function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
