import { fromHost, writeSlice, zeros, type PagedKvStep } from '../ops/index.js';
import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';

/** Positions per KV block: a sequence's cache grows in steps of this many positions. */
export const KV_BLOCK_SIZE = 16;

/** Blocks a fresh pool starts with; it doubles whenever a reservation does not fit. */
const INITIAL_BLOCKS = 64;

/**
 * The key and value storage of every sequence a model decodes, paged as vLLM's PagedAttention pages it: per layer a
 * key pool and a value pool [blocks, kvHeads, KV_BLOCK_SIZE, headDim] in the model's dtype, and a free list of
 * block ids. A sequence reserves the blocks for its whole capacity up front (so a step never runs out) and gives
 * them back when it ends; the pool grows by doubling (existing blocks keep their ids) and never shrinks.
 */
export class KvPool {
  readonly keys: Tensor[] = [];
  readonly values: Tensor[] = [];
  private blocks = 0;
  private readonly free: number[] = [];

  constructor(
    readonly layers: number,
    readonly kvHeads: number,
    readonly headDim: number,
    readonly dtype: DType,
    readonly device: string,
  ) {}

  /** Blocks the pool holds, free or reserved. */
  get capacity(): number {
    return this.blocks;
  }

  get freeBlocks(): number {
    return this.free.length;
  }

  /** Takes `count` blocks off the free list, growing the pool first when too few are free. */
  reserve(count: number): number[] {
    if (count > this.free.length) this.grow(Math.max(this.blocks * 2, this.blocks + count - this.free.length, INITIAL_BLOCKS));
    return this.free.splice(this.free.length - count, count).reverse();
  }

  release(ids: readonly number[]): void {
    this.free.push(...[...ids].reverse());
  }

  /** Frees the pools' memory; only when no sequence holds blocks (the model reopens a pool on its next cache). */
  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t.dispose();
    this.keys.length = 0;
    this.values.length = 0;
    this.blocks = 0;
    this.free.length = 0;
  }

  private grow(blocks: number): void {
    const shape = [blocks, this.kvHeads, KV_BLOCK_SIZE, this.headDim];
    for (const pools of [this.keys, this.values]) {
      for (let layer = 0; layer < this.layers; layer++) {
        const next = zeros(shape, { dtype: this.dtype, device: this.device }).keep();
        const old = pools[layer];
        if (old) {
          writeSlice(next, 0, 0, old);
          old.dispose();
        }
        pools[layer] = next;
      }
    }
    // Lowest ids first out of the free list (reserve takes from the end).
    for (let id = blocks - 1; id >= this.blocks; id--) this.free.push(id);
    this.blocks = blocks;
  }
}

/**
 * One sequence's keys and values for every layer: the pool blocks that hold its positions, in order, and how many
 * positions it has stored. Reserved for `capacity` positions when created; dispose() returns the blocks.
 */
export class KvCache {
  /** Positions already stored (the next token's position). */
  length = 0;
  private ids: number[] | null;

  constructor(
    readonly pool: KvPool,
    readonly capacity: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`A KV cache needs a positive whole number of positions, got ${capacity}.`);
    this.ids = pool.reserve(Math.ceil(capacity / KV_BLOCK_SIZE));
  }

  /** The pool block ids holding positions 0.., in order. */
  get blocks(): readonly number[] {
    if (!this.ids) throw new Error('This KV cache was disposed.');
    return this.ids;
  }

  /** Called once per forward after every layer stored its T new positions. */
  advance(t: number): void {
    this.length += t;
  }

  dispose(): void {
    if (this.ids) this.pool.release(this.ids);
    this.ids = null;
  }
}

/**
 * The block table and lengths of one forward over `caches` (one per batch row, all from one pool) that adds `seq`
 * positions to each; checks that every row has room.
 */
export function pagedKvStep(caches: readonly KvCache[], seq: number, device: string): PagedKvStep {
  const pool = caches[0]!.pool;
  let maxBlocks = 1;
  for (const c of caches) {
    if (c.pool !== pool) throw new Error('Every KV cache of one batch must come from the same model (one KV pool).');
    if (c.length + seq > c.capacity) {
      throw new Error(`The KV cache holds ${c.capacity} positions and ${c.length + seq} were needed; raise maxLength or shorten the prompt.`);
    }
    maxBlocks = Math.max(maxBlocks, c.blocks.length);
  }
  const table = new Int32Array(caches.length * maxBlocks);
  const lengths = new Int32Array(caches.length);
  caches.forEach((c, b) => {
    table.set(c.blocks, b * maxBlocks);
    lengths[b] = c.length + seq;
  });
  return {
    blockTable: fromHost(table, [caches.length, maxBlocks], 'int32', device),
    lengths: fromHost(lengths, [caches.length], 'int32', device),
    blockSize: KV_BLOCK_SIZE,
    seq,
  };
}
