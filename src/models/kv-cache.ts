import { narrow, writeSlice, zeros } from '../ops/index.js';
import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * Keys and values of one sequence (batch of 1) for every layer, preallocated [1, kvHeads, capacity, headDim]
 * and filled in place; attention reads the first `length` positions as a view.
 */
export class KvCache {
  private readonly keys: Tensor[] = [];
  private readonly values: Tensor[] = [];
  /** Positions already stored (the next token's position). */
  length = 0;

  constructor(
    readonly layers: number,
    readonly kvHeads: number,
    readonly headDim: number,
    readonly capacity: number,
    readonly dtype: DType,
    readonly device: string,
  ) {
    for (let i = 0; i < layers; i++) {
      this.keys.push(zeros([1, kvHeads, capacity, headDim], { dtype, device }).keep());
      this.values.push(zeros([1, kvHeads, capacity, headDim], { dtype, device }).keep());
    }
  }

  /** Stores k/v [1, kvHeads, T, headDim] after the current length; returns views of everything stored so far. */
  append(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    const t = k.shape[2]!;
    if (this.length + t > this.capacity) {
      throw new Error(`The KV cache holds ${this.capacity} positions and ${this.length + t} were needed; raise maxLength or shorten the prompt.`);
    }
    writeSlice(this.keys[layer]!, 2, this.length, k);
    writeSlice(this.values[layer]!, 2, this.length, v);
    const n = this.length + t;
    return { k: narrow(this.keys[layer]!, 2, 0, n), v: narrow(this.values[layer]!, 2, 0, n) };
  }

  /** Called once per forward after every layer appended T positions. */
  advance(t: number): void {
    this.length += t;
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t.dispose();
  }
}
