import type { DType } from '../tensor/dtype.js';

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute byte offset of the first element in the file that holds the tensor (its shard, for a sharded checkpoint). */
  dataOffset: number;
  byteLength: number;
}

/** Named tensors stored somewhere, read lazily: the index is known up front, the bytes are fetched on demand. */
export interface TensorSource {
  /** Tensor names in storage order. */
  names(): string[];
  has(name: string): boolean;
  /** Throws a FormatError naming the tensor and the file when the tensor is absent. */
  info(name: string): TensorInfo;
  /** Raw little-endian bytes in a fresh ArrayBuffer starting at offset 0, so `new Float32Array(bytes.buffer)` works. */
  read(name: string): Promise<Uint8Array>;
  close(): Promise<void>;
  /** Where the tensors are stored, for messages: the .safetensors file, or the index of a sharded checkpoint. */
  readonly path?: string;
  /** The file that holds tensor `name`, for messages. */
  pathOf?(name: string): string;
}

/** The file to name in a message about tensor `name` of `source`. */
export function tensorFile(source: TensorSource, name: string): string {
  return source.pathOf?.(name) ?? sourcePath(source);
}

/** The file (or index) to name in a message about `source` as a whole. */
export function sourcePath(source: TensorSource): string {
  return source.path ?? 'the checkpoint';
}
