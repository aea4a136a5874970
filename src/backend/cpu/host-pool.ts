import type { HostArray } from '../../tensor/buffer.js';
import { bytesPerElement, type DType } from '../../tensor/dtype.js';
import { allocHost } from './cpu-buffer.js';

/**
 * Reuses released host arrays of the same dtype and length. Training steps free and re-make the same
 * activation shapes every step; without reuse each one is a fresh SharedArrayBuffer (zeroed by the kernel,
 * returned to the OS only when the GC runs), which costs system time and lets the resident set grow far past
 * what a step holds. Arrays under MIN_BYTES are left to the GC; the pool holds at most `capacityBytes`.
 */
export class HostPool {
  private readonly free = new Map<string, HostArray[]>();
  private pooledBytes = 0;
  static readonly MIN_BYTES = 16 * 1024;

  constructor(private readonly capacityBytes: number) {}

  /** A pooled array (contents undefined) or a fresh zeroed one. */
  take(dtype: DType, length: number): { data: HostArray; reused: boolean } {
    const list = this.free.get(`${dtype}:${length}`);
    const data = list?.pop();
    if (data) {
      this.pooledBytes -= data.byteLength;
      return { data, reused: true };
    }
    return { data: allocHost(dtype, length), reused: false };
  }

  give(dtype: DType, data: HostArray): void {
    const bytes = data.length * bytesPerElement(dtype);
    if (bytes < HostPool.MIN_BYTES || this.pooledBytes + bytes > this.capacityBytes) return;
    const key = `${dtype}:${data.length}`;
    const list = this.free.get(key);
    if (list) list.push(data);
    else this.free.set(key, [data]);
    this.pooledBytes += bytes;
  }

  /** Drops every pooled array (they become garbage). */
  clear(): void {
    this.free.clear();
    this.pooledBytes = 0;
  }

  get bytes(): number {
    return this.pooledBytes;
  }
}
