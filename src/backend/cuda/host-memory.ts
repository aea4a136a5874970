import type { PinnedHostMemory } from './driver.js';
import type { CudaRuntime } from './runtime.js';

/**
 * Pinned host memory and a side stream for moving data between it and the device while the runtime's main
 * stream computes. Ordering between the two streams is explicit: `mainReached()` marks a point of the main
 * stream that side-stream work may wait for (`sideWaitFor`), and `sideReached()` marks a point of the side stream
 * that main-stream work may wait for (`mainWaitFor`). Never managed memory: page-locked allocations only, so
 * nothing here can oversubscribe the device.
 */
export class HostPager {
  readonly sideStream: number;
  private readonly blocks = new Set<PinnedHostMemory>();

  constructor(readonly runtime: CudaRuntime) {
    runtime.makeCurrent();
    this.sideStream = runtime.driver.streamCreateNonBlocking();
  }

  /** Zeroed page-locked host memory; freed by free() or dispose(). */
  allocHost(bytes: number): PinnedHostMemory {
    this.runtime.makeCurrent();
    const block = this.runtime.driver.hostAlloc(Math.max(1, bytes));
    new Uint8Array(block.view).fill(0);
    this.blocks.add(block);
    return block;
  }

  /** Frees a block after the side stream has finished every copy queued so far. */
  free(block: PinnedHostMemory): void {
    if (!this.blocks.delete(block)) return;
    this.synchronize();
    this.runtime.driver.hostFree(block);
  }

  /** A fresh ordering event (no timing). */
  event(): number {
    this.runtime.makeCurrent();
    return this.runtime.driver.eventCreateForOrdering();
  }

  /** Records `event` at the current end of the main stream. */
  mainReached(event: number): void {
    this.runtime.driver.eventRecord(event, this.runtime.stream);
  }

  /** Records `event` at the current end of the side stream. */
  sideReached(event: number): void {
    this.runtime.driver.eventRecord(event, this.sideStream);
  }

  /** Side-stream work queued from now on starts after `event`'s latest record. */
  sideWaitFor(event: number): void {
    this.runtime.driver.streamWaitEvent(this.sideStream, event);
  }

  /** Main-stream work queued from now on starts after `event`'s latest record. */
  mainWaitFor(event: number): void {
    this.runtime.driver.streamWaitEvent(this.runtime.stream, event);
  }

  /** Side stream: device address `dst` <- host address `src`, `bytes` bytes. */
  toDevice(dst: number, src: number, bytes: number): void {
    if (bytes > 0) this.runtime.driver.memcpyHtoDAsync(dst, src, bytes, this.sideStream);
  }

  /** Side stream: host address `dst` <- device address `src`, `bytes` bytes. */
  toHost(dst: number, src: number, bytes: number): void {
    if (bytes > 0) this.runtime.driver.memcpyDtoHAsync(dst, src, bytes, this.sideStream);
  }

  /** Waits until every copy queued on the side stream has finished. */
  synchronize(): void {
    this.runtime.makeCurrent();
    this.runtime.driver.streamSynchronize(this.sideStream);
  }

  destroyEvent(event: number): void {
    this.runtime.driver.eventDestroy(event);
  }

  /** Frees every block (after the side stream drains). The side stream itself lives as long as the context. */
  dispose(): void {
    this.synchronize();
    for (const block of this.blocks) this.runtime.driver.hostFree(block);
    this.blocks.clear();
  }
}
