import type { DeviceBuffer } from '../../tensor/buffer.js';
import { bytesPerElement, type DType } from '../../tensor/dtype.js';

/** Device memory from the caching allocator: `length` elements of `dtype` at device address `ptr`. */
export class CudaBuffer implements DeviceBuffer {
  readonly bytesPerElement: number;
  private address: number;

  constructor(
    readonly device: string,
    readonly dtype: DType,
    readonly length: number,
    ptr: number,
  ) {
    this.bytesPerElement = bytesPerElement(dtype);
    this.address = ptr;
  }

  get released(): boolean {
    return this.address === 0 && this.length > 0;
  }

  /** Device address of element `offset`. */
  at(offset: number): number {
    if (this.released) throw new Error(`A released ${this.dtype} CUDA buffer of ${this.length} elements was used; a tensor was disposed while still needed.`);
    return this.address + offset * this.bytesPerElement;
  }

  /** Hands the address to the caller (for the allocator) and marks the buffer released; 0 when already released. */
  take(): number {
    const ptr = this.address;
    this.address = 0;
    return ptr;
  }
}
