import { bytesPerElement, type DType } from '../tensor/dtype.js';

/** The typed array that views a tensor's raw bytes; bfloat16 and float16 stay as their 16-bit patterns. */
export interface TypedArrayFor {
  float32: Float32Array;
  bfloat16: Uint16Array;
  float16: Uint16Array;
  int32: Int32Array;
  int64: BigInt64Array;
  uint8: Uint8Array;
}

export type TensorData = TypedArrayFor[DType];

/** safetensors is little-endian; typed arrays use the host's order, so a big-endian host would misread every tensor. */
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Views little-endian tensor bytes as the typed array of `dtype` without copying; copies only when `bytes`
 * does not start on an element boundary of its buffer.
 */
export function decodeTensor<D extends DType>(dtype: D, bytes: Uint8Array): TypedArrayFor[D] {
  if (!HOST_IS_LITTLE_ENDIAN) throw new Error('loraforge reads safetensors only on little-endian hosts.');
  const size = bytesPerElement(dtype);
  if (bytes.byteLength % size !== 0) {
    throw new RangeError(`A ${dtype} tensor needs a multiple of ${size} bytes, got ${bytes.byteLength}.`);
  }
  const src = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const length = src.byteLength / size;
  let out: TensorData;
  switch (dtype) {
    case 'float32':
      out = new Float32Array(src.buffer, src.byteOffset, length);
      break;
    case 'bfloat16':
    case 'float16':
      out = new Uint16Array(src.buffer, src.byteOffset, length);
      break;
    case 'int32':
      out = new Int32Array(src.buffer, src.byteOffset, length);
      break;
    case 'int64':
      out = new BigInt64Array(src.buffer, src.byteOffset, length);
      break;
    default:
      out = src;
  }
  return out as TypedArrayFor[D];
}
