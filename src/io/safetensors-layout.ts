import { bytesPerElement, dtypeToSafetensors, type DType } from '../tensor/dtype.js';
import { compareCodePoints } from './code-point-order.js';
import { LENGTH_PREFIX_BYTES } from './safetensors-header.js';

export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
}

export interface SafetensorsLayout<T extends TensorSpec> {
  /** The 8-byte little-endian length followed by the space-padded JSON header: the file's first bytes. */
  header: Uint8Array;
  /** The tensors in the order their bytes follow the header. */
  order: T[];
  /** Bytes of tensor data after the header. */
  dataBytes: number;
}

/**
 * Position of each dtype in the Rust crate's `Dtype` enum (BOOL, F4, ..., U8, I8, ..., F16, BF16, I32, U32, F32,
 * C64, F64, I64, U64), whose derived order the crate sorts by. Only the relative order matters.
 */
const RUST_DTYPE_RANK: Record<DType, number> = { uint8: 0, float16: 1, bfloat16: 2, int32: 3, float32: 4, int64: 5 };

const utf8 = new TextEncoder();

export function tensorByteLength(spec: TensorSpec): number {
  return spec.shape.reduce((a, b) => a * b, 1) * bytesPerElement(spec.dtype);
}

/**
 * Lays a file out exactly as the `safetensors` library (Rust crate `prepare`, used by Python's `save_file`) does:
 * data sorted by dtype, larger dtypes in the crate's enum order first, then by name; header JSON with
 * `__metadata__` first (only when metadata is given) and tensors in data order, each as
 * {"dtype","shape","data_offsets"}; the header padded with spaces to a multiple of 8 bytes.
 * Metadata keys keep the caller's order (Python passes them through a Rust HashMap, whose order is arbitrary).
 */
export function planSafetensors<T extends TensorSpec>(tensors: readonly T[], metadata?: Record<string, string>): SafetensorsLayout<T> {
  validateSpecs(tensors, metadata);
  const order = [...tensors].sort(
    (a, b) => RUST_DTYPE_RANK[b.dtype] - RUST_DTYPE_RANK[a.dtype] || compareCodePoints(a.name, b.name),
  );
  const fields: string[] = [];
  if (metadata !== undefined) fields.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let offset = 0;
  for (const t of order) {
    const end = offset + tensorByteLength(t);
    fields.push(
      `${JSON.stringify(t.name)}:{"dtype":"${dtypeToSafetensors(t.dtype)}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const json = utf8.encode(`{${fields.join(',')}}`);
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const header = new Uint8Array(LENGTH_PREFIX_BYTES + padded).fill(0x20);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, LENGTH_PREFIX_BYTES);
  return { header, order, dataBytes: offset };
}

function validateSpecs(tensors: readonly TensorSpec[], metadata: Record<string, string> | undefined): void {
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === '__metadata__') throw new Error('A tensor cannot be named "__metadata__"; safetensors reserves that key for metadata.');
    if (seen.has(t.name)) throw new Error(`Tensor "${t.name}" is listed twice; every tensor needs a unique name.`);
    seen.add(t.name);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(`Tensor "${t.name}" has shape [${t.shape.join(', ')}]; dimensions must be non-negative integers.`);
    }
  }
  for (const [key, value] of Object.entries(metadata ?? {})) {
    if (typeof value !== 'string') throw new Error(`Metadata "${key}" is a ${typeof value}; safetensors metadata values must be strings.`);
  }
}
