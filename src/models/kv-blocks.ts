/**
 * The block table of a paged KV pool, as vLLM's automatic prefix caching keeps it: which blocks are free, how many
 * sequences hold each block (a reference count), and which blocks hold a published prompt prefix, by the chained
 * hash of the tokens up to and including that block. A block whose count falls to 0 while it holds a prefix stays
 * cached (least recently released first out) until the pool needs it; a referenced block is never evicted.
 * No tensors here: KvPool owns the storage and asks this table for block ids.
 */
import { createHash } from 'node:crypto';

/**
 * The chained hashes of the first `blocks` full blocks of `tokens` (blockSize tokens each): block i's hash covers
 * the namespace and every token of blocks 0..i, so two sequences share block i only when they agree on all of it.
 * `namespace` keys the chain by what computed the keys and values (the base model, the adapter and its load), so
 * one adapter's prefix never serves another adapter or the base.
 */
export function prefixBlockHashes(namespace: string, tokens: readonly number[], blocks: number, blockSize: number): string[] {
  if (blocks * blockSize > tokens.length) throw new RangeError(`${blocks} blocks of ${blockSize} tokens need ${blocks * blockSize} tokens; ${tokens.length} were given.`);
  const out: string[] = [];
  let previous = createHash('sha256').update('loraforge kv prefix\0').update(namespace).digest();
  const block = new Int32Array(blockSize);
  for (let i = 0; i < blocks; i++) {
    for (let t = 0; t < blockSize; t++) block[t] = tokens[i * blockSize + t]!;
    previous = createHash('sha256').update(previous).update(new Uint8Array(block.buffer)).digest();
    out.push(previous.toString('hex'));
  }
  return out;
}

/** Thrown by KvBlockTable.take when the pool is at its limit and too few blocks are free or evictable. */
export class KvPoolFullError extends Error {
  override name = 'KvPoolFullError';
  constructor(
    readonly wanted: number,
    readonly available: number,
    readonly limit: number,
  ) {
    super(`The KV pool has ${available} of its ${limit} blocks free and ${wanted} were needed; wait for running sequences to end or raise the pool's limit.`);
  }
}

export class KvBlockTable {
  /** Blocks the table holds, free, cached or referenced. */
  private blocks = 0;
  /** Blocks with no reference and no prefix; the next take() pops from the end. */
  private readonly free: number[] = [];
  private readonly refs: number[] = [];
  /** Published prefix hash -> block, and back. */
  private readonly byHash = new Map<string, number>();
  private readonly hashOf = new Map<number, string>();
  /** Cached blocks without references, least recently released first (Map keeps insertion order). */
  private readonly evictable = new Map<number, string>();

  /** @param limit blocks the table may hold at most (Infinity: no limit). */
  constructor(readonly limit = Number.POSITIVE_INFINITY) {
    if (limit !== Number.POSITIVE_INFINITY && (!Number.isInteger(limit) || limit < 1)) throw new RangeError(`A KV pool's block limit must be a positive whole number, got ${limit}.`);
  }

  get capacity(): number {
    return this.blocks;
  }

  /** Blocks no sequence holds: free ones and cached ones that could be evicted. */
  get unreferenced(): number {
    return this.free.length + this.evictable.size;
  }

  /** Cached blocks holding a published prefix (referenced or not). */
  get cachedBlocks(): number {
    return this.byHash.size;
  }

  refCount(block: number): number {
    return this.refs[block] ?? 0;
  }

  /** Adds blocks ids capacity .. capacity + count - 1 (the storage grew); lowest ids are taken first. */
  addBlocks(count: number): void {
    for (let id = this.blocks + count - 1; id >= this.blocks; id--) {
      this.free.push(id);
      this.refs[id] = 0;
    }
    this.blocks += count;
  }

  /**
   * How many more blocks the storage must grow by before take(count) can succeed (0 when free and evictable blocks
   * suffice); throws KvPoolFullError when the limit forbids that growth.
   */
  shortfall(count: number): number {
    const missing = count - this.unreferenced;
    if (missing <= 0) return 0;
    if (this.blocks + missing > this.limit) throw new KvPoolFullError(count, this.unreferenced + (this.limit - this.blocks), this.limit);
    return missing;
  }

  /** `count` blocks, each with one reference: free blocks first, then the least recently released cached ones. */
  take(count: number): number[] {
    if (this.shortfall(count) > 0) throw new Error(`take(${count}) needs the pool to grow first (${this.unreferenced} blocks are unreferenced).`);
    const out: number[] = [];
    while (out.length < count && this.free.length > 0) out.push(this.free.pop()!);
    for (const [block, hash] of this.evictable) {
      if (out.length === count) break;
      this.evictable.delete(block);
      this.byHash.delete(hash);
      this.hashOf.delete(block);
      out.push(block);
    }
    for (const b of out) this.refs[b] = 1;
    return out;
  }

  /**
   * The blocks holding the longest published prefix of `hashes`, each given one more reference (a cached block
   * without references leaves the eviction order).
   */
  share(hashes: readonly string[]): number[] {
    const out: number[] = [];
    for (const hash of hashes) {
      const block = this.byHash.get(hash);
      if (block === undefined) break;
      if (this.refs[block] === 0) this.evictable.delete(block);
      this.refs[block] = this.refs[block]! + 1;
      out.push(block);
    }
    return out;
  }

  /**
   * Records that referenced `block` holds the prefix `hash`. A hash another block already holds keeps that block
   * (this one stays private and is freed as any other); a block holds one hash for as long as it is cached.
   */
  publish(block: number, hash: string): void {
    if (!(this.refs[block]! > 0)) throw new Error(`Block ${block} is not referenced; only a sequence's own blocks can be published.`);
    if (this.byHash.has(hash) || this.hashOf.has(block)) return;
    this.byHash.set(hash, block);
    this.hashOf.set(block, hash);
  }

  /** Drops one reference of each block; one left with none is cached when it holds a prefix, else freed. */
  release(blocks: readonly number[]): void {
    for (let i = blocks.length - 1; i >= 0; i--) {
      const b = blocks[i]!;
      const n = this.refs[b];
      if (n === undefined || n < 1) throw new Error(`Block ${b} was released more often than it was taken.`);
      this.refs[b] = n - 1;
      if (n > 1) continue;
      const hash = this.hashOf.get(b);
      if (hash === undefined) this.free.push(b);
      else this.evictable.set(b, hash);
    }
  }

  /** Forgets every block (the storage was freed). */
  clear(): void {
    this.blocks = 0;
    this.free.length = 0;
    this.refs.length = 0;
    this.byHash.clear();
    this.hashOf.clear();
    this.evictable.clear();
  }
}
