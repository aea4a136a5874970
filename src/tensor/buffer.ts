import type { DType } from './dtype.js';

/**
 * Memory owned by a backend. The tensor layer never looks inside: it only counts references so that views
 * share storage and the last owner's dispose() returns it to the backend.
 */
export interface DeviceBuffer {
  readonly device: string;
  readonly dtype: DType;
  /** Number of elements. */
  readonly length: number;
}

/** Host arrays by dtype: float32 -> Float32Array, bfloat16/float16 -> Uint16Array (raw bits), int64 -> BigInt64Array. */
export type HostArray = Float32Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array;
