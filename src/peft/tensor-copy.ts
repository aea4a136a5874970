import { backendOf, contiguous, writeSlice, zeros } from '../ops/index.js';
import type { Tensor } from '../tensor/tensor.js';

/** A new tensor with the same dtype, device and values, outside any autograd graph. */
export function cloneTensor(t: Tensor): Tensor {
  const out = zeros(t.shape, { dtype: t.dtype, device: t.device });
  writeSlice(out, 0, 0, t);
  return out;
}

/** Writes `src` (same shape; any float dtype, converted on copy) over the values of `dst`, keeping dst's identity. */
export function overwriteTensor(dst: Tensor, src: Tensor): void {
  writeSlice(dst, 0, 0, src);
}

/** The tensor's elements as little-endian bytes in its own dtype (bfloat16/float16 as raw 16-bit patterns). */
export async function tensorBytes(t: Tensor): Promise<Uint8Array> {
  const c = contiguous(t);
  const host = await backendOf(c).toHost(c.buffer, c.offset, c.numel);
  return new Uint8Array(host.buffer, host.byteOffset, host.byteLength);
}
