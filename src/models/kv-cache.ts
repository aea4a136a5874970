import { fromHost, writeSlice, zeros, type PagedKvStep } from '../ops/index.js';
import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { KvBlockTable, prefixBlockHashes } from './kv-blocks.js';

/** Positions per KV block: a sequence's cache grows in steps of this many positions. */
export const KV_BLOCK_SIZE = 16;

/** Blocks a fresh pool starts with; it doubles whenever a reservation does not fit. */
const INITIAL_BLOCKS = 64;

export interface KvPoolOptions {
  /** Blocks the pool may hold at most; a reservation beyond them throws KvPoolFullError. Default: no limit. */
  readonly maxBlocks?: number;
}

/**
 * The key and value storage of every sequence a model decodes, paged as vLLM's PagedAttention pages it: per layer a
 * key pool and a value pool [blocks, kvHeads, KV_BLOCK_SIZE, headDim] in the model's dtype, and a block table
 * (kv-blocks.ts) of free, shared and cached blocks. A sequence reserves the blocks for its whole capacity up front
 * (so a step never runs out) and gives them back when it ends. Full blocks of a prompt can be published under
 * their prefix hash, so that a later sequence with the same prefix shares them (a reference each) instead of
 * computing them again; released published blocks stay cached until a reservation needs them. The pool grows by
 * doubling (existing blocks keep their ids, up to `maxBlocks`) only when free and cached blocks are too few, and
 * never shrinks.
 */
export class KvPool {
  readonly keys: Tensor[] = [];
  readonly values: Tensor[] = [];
  private readonly table: KvBlockTable;

  constructor(
    readonly layers: number,
    readonly kvHeads: number,
    readonly headDim: number,
    readonly dtype: DType,
    readonly device: string,
    options: KvPoolOptions = {},
  ) {
    this.table = new KvBlockTable(options.maxBlocks);
  }

  /** Blocks the pool may hold at most (Infinity without a limit). */
  get maxBlocks(): number {
    return this.table.limit;
  }

  /** Blocks the pool holds, free, cached or reserved. */
  get capacity(): number {
    return this.table.capacity;
  }

  /** Blocks no sequence holds (free, or cached and evictable). */
  get freeBlocks(): number {
    return this.table.unreferenced;
  }

  /** Blocks holding a published prefix. */
  get cachedBlocks(): number {
    return this.table.cachedBlocks;
  }

  /** Sequences holding `block`. */
  refCount(block: number): number {
    return this.table.refCount(block);
  }

  /**
   * Takes `count` blocks: free ones, then cached ones least recently released first, growing the pool first when
   * those are too few; KvPoolFullError when that growth would pass maxBlocks.
   */
  reserve(count: number): number[] {
    const missing = this.table.shortfall(count);
    if (missing > 0) this.grow(Math.min(this.table.limit, Math.max(this.capacity * 2, this.capacity + missing, INITIAL_BLOCKS)));
    return this.table.take(count);
  }

  /** The blocks of the longest published prefix among `hashes` (prefixBlockHashes), one reference more each. */
  share(hashes: readonly string[]): number[] {
    return this.table.share(hashes);
  }

  /** Publishes reserved `block` as holding the prefix whose chained hash is `hash`. */
  publish(block: number, hash: string): void {
    this.table.publish(block, hash);
  }

  /** Drops one reference of each block (reserved or shared). */
  release(ids: readonly number[]): void {
    this.table.release(ids);
  }

  /** Frees the pools' memory; only when no sequence holds blocks (the model reopens a pool on its next cache). */
  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t.dispose();
    this.keys.length = 0;
    this.values.length = 0;
    this.table.clear();
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
    this.table.addBlocks(blocks - this.capacity);
  }
}

/** A prompt whose full blocks a new cache may share with earlier sequences, and publish for later ones. */
export interface KvPrefix {
  /** What computed the keys and values: the adapter (and its load) or the base model; prefixes never cross it. */
  readonly namespace: string;
  readonly tokens: readonly number[];
}

/**
 * One sequence's keys and values for every layer: the pool blocks that hold its positions, in order, and how many
 * positions it has stored. Reserved for `capacity` positions when created; dispose() returns the blocks.
 * Given a prefix, it starts with the longest published run of the prompt's full blocks shared (at most
 * floor((L - 1) / KV_BLOCK_SIZE) of L tokens, so at least one prompt token is computed for the next token's
 * logits) and `length` already at their end; publish() publishes the prompt's full blocks once stored, and
 * those of the prompt and the tokens generated after it when given them (a later turn of the conversation then
 * shares those too).
 */
export class KvCache {
  /** Positions already stored (the next token's position). */
  length = 0;
  /** Positions at the start that were shared from the prefix cache, not computed by this sequence. */
  readonly cachedTokens: number = 0;
  private ids: number[] | null;
  /** The prefix given at creation, or null: such a cache shares and publishes nothing. */
  private readonly prefix: KvPrefix | null;
  /** The chained hashes of the prefix's full blocks. */
  private readonly hashes: readonly string[];

  constructor(
    readonly pool: KvPool,
    readonly capacity: number,
    prefix?: KvPrefix,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`A KV cache needs a positive whole number of positions, got ${capacity}.`);
    const total = Math.ceil(capacity / KV_BLOCK_SIZE);
    this.prefix = prefix ?? null;
    const full = prefix ? Math.min(Math.floor(prefix.tokens.length / KV_BLOCK_SIZE), Math.floor(capacity / KV_BLOCK_SIZE)) : 0;
    this.hashes = prefix ? prefixBlockHashes(prefix.namespace, prefix.tokens, full, KV_BLOCK_SIZE) : [];
    const shared = prefix ? pool.share(this.hashes.slice(0, Math.floor((prefix.tokens.length - 1) / KV_BLOCK_SIZE))) : [];
    try {
      this.ids = [...shared, ...pool.reserve(total - shared.length)];
    } catch (error) {
      pool.release(shared);
      throw error;
    }
    this.length = this.cachedTokens = shared.length * KV_BLOCK_SIZE;
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

  /**
   * Publishes, for later sequences of the same namespace, the full blocks of `tokens` that this cache stores:
   * position i must hold tokens[i]. Default: the prompt given at creation; at the end of a sequence, its prompt
   * and generated tokens (the last one has no keys yet, so at most `length` positions count). Nothing for a cache
   * made without a prefix.
   */
  publish(tokens: readonly number[] | undefined = this.prefix?.tokens): void {
    if (!this.prefix || !tokens) return;
    const ids = this.blocks;
    const stored = Math.min(Math.floor(tokens.length / KV_BLOCK_SIZE), Math.floor(this.length / KV_BLOCK_SIZE));
    const hashes = tokens === this.prefix.tokens && stored <= this.hashes.length ? this.hashes : prefixBlockHashes(this.prefix.namespace, tokens, stored, KV_BLOCK_SIZE);
    for (let i = 0; i < stored; i++) this.pool.publish(ids[i]!, hashes[i]!);
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
