import type { Driver } from './driver.js';

export interface AllocatorStats {
  /** Bytes of live blocks (rounded to their size class). */
  readonly inUse: number;
  /** Bytes held from the driver: live blocks plus cached free blocks. */
  readonly reserved: number;
  /** Highest inUse since the allocator was made or resetPeak() ran. */
  readonly peak: number;
  /** Highest reserved since the allocator was made or resetPeak() ran. */
  readonly peakReserved: number;
  /** Free blocks waiting for reuse. */
  readonly cachedBlocks: number;
  /** cuMemAlloc calls so far (a cache hit makes none). */
  readonly driverAllocations: number;
}

/** Smallest block; cuMemAlloc aligns to at least this, so every block is 512-byte aligned. */
const MIN_BLOCK = 512;
/** Size classes per power of two: a block wastes at most 1/8 of its bytes. */
const CLASSES_PER_OCTAVE = 8;

/** The size class of a request: a multiple of 2^(floor(log2(bytes)) - 3) bytes, and at least 512. */
export function sizeClass(bytes: number): number {
  if (bytes <= MIN_BLOCK) return MIN_BLOCK;
  const octave = Math.floor(Math.log2(bytes));
  const step = Math.max(MIN_BLOCK, 2 ** octave / CLASSES_PER_OCTAVE);
  return Math.ceil(bytes / step) * step;
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}

/**
 * A caching allocator over cuMemAlloc: released blocks go to a free list per size class and are handed out
 * again without a driver call. Blocks are reused only in stream order (one stream), so a block released while
 * kernels still read it is safe to hand to the next kernel on the same stream. Never managed memory.
 */
export class CachingAllocator {
  private readonly freeLists = new Map<number, number[]>();
  private readonly live = new Map<number, number>();
  private inUse = 0;
  private cached = 0;
  private cachedBlocks = 0;
  private peak = 0;
  private peakReserved = 0;
  private driverAllocations = 0;

  constructor(private readonly driver: Driver) {}

  /** A device pointer to at least `bytes` bytes; 0 for an empty request. */
  alloc(bytes: number): number {
    if (bytes <= 0) return 0;
    const size = sizeClass(bytes);
    const list = this.freeLists.get(size);
    let ptr = list?.pop();
    if (ptr !== undefined) {
      this.cached -= size;
      this.cachedBlocks--;
    } else {
      ptr = this.fresh(size);
    }
    this.live.set(ptr, size);
    this.inUse += size;
    this.peak = Math.max(this.peak, this.inUse);
    this.peakReserved = Math.max(this.peakReserved, this.inUse + this.cached);
    return ptr;
  }

  private fresh(size: number): number {
    let ptr = this.driver.memAlloc(size);
    if (ptr === null) {
      this.emptyCache();
      ptr = this.driver.memAlloc(size);
    }
    if (ptr === null) {
      const { free, total } = this.driver.memInfo();
      throw new Error(
        `CUDA out of memory: tried to allocate ${gib(size)} with ${gib(this.inUse)} in use by loraforge and ${gib(free)} of ${gib(total)} free on the GPU; use a smaller batch or sequence length, gradient checkpointing, or QLoRA.`,
      );
    }
    this.driverAllocations++;
    return ptr;
  }

  /** Returns a block to its free list; releasing 0 or an unknown pointer does nothing. */
  release(ptr: number): void {
    const size = this.live.get(ptr);
    if (size === undefined) return;
    this.live.delete(ptr);
    this.inUse -= size;
    let list = this.freeLists.get(size);
    if (!list) {
      list = [];
      this.freeLists.set(size, list);
    }
    list.push(ptr);
    this.cached += size;
    this.cachedBlocks++;
  }

  /** Gives every cached free block back to the driver (cuMemFree waits for the device first). */
  emptyCache(): void {
    for (const list of this.freeLists.values()) for (const ptr of list) this.driver.memFree(ptr);
    this.freeLists.clear();
    this.cached = 0;
    this.cachedBlocks = 0;
  }

  stats(): AllocatorStats {
    return {
      inUse: this.inUse,
      reserved: this.inUse + this.cached,
      peak: this.peak,
      peakReserved: this.peakReserved,
      cachedBlocks: this.cachedBlocks,
      driverAllocations: this.driverAllocations,
    };
  }

  resetPeak(): void {
    this.peak = this.inUse;
    this.peakReserved = this.inUse + this.cached;
  }
}
