import type { ModelConfig } from '../models/config.js';
import { checkpointLayout, checkpointName } from '../models/layout.js';
import type { TensorInfo, TensorSource } from '../io/tensor-source.js';
import { Rng } from '../tensor/random.js';

/**
 * The tensors of a checkpoint for `config`, made up from a seed instead of read from disk: norms scale by
 * one, every other weight is N(0, std^2). Each tensor's values depend only on (seed, name), so the same seed
 * always builds the same model, whatever order the loader asks in.
 */
export class RandomCheckpoint implements TensorSource {
  private readonly shapes = new Map<string, number[]>();
  private readonly norms = new Set<string>();
  /** Norm weights that scale by 1: ones, or zeros for Gemma's (1 + w) norms. */
  private readonly normFill: number;

  constructor(
    config: ModelConfig,
    private readonly seed: number,
    private readonly std: number,
  ) {
    for (const t of checkpointLayout(config)) {
      const name = checkpointName(t, config.weightPrefix, config.lmHeadName);
      this.shapes.set(name, [...t.shape]);
      if (t.kind === 'norm') this.norms.add(name);
    }
    this.normFill = config.normPlusOne ? 0 : 1;
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
    if (this.norms.has(name)) values.fill(this.normFill);
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
