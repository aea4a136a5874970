/** Host-side shape arithmetic for the strided kernels. */

export interface Collapsed {
  readonly shape: number[];
  /** One stride list per operand, in the order given. */
  readonly strides: number[][];
}

/**
 * The same index space with fewer dimensions: size-1 dimensions dropped, and neighbours merged wherever every
 * operand steps through them as one run (stride[d] == stride[d+1] * shape[d+1]). A contiguous copy becomes
 * rank 1, which the kernels index without divisions. Always returns rank >= 1.
 */
export function collapseDims(shape: readonly number[], operands: readonly (readonly number[])[]): Collapsed {
  const dims: number[] = [];
  const strides: number[][] = operands.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    const size = shape[d]!;
    if (size === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && operands.every((s, k) => strides[k]![last] === s[d]! * size)) {
      dims[last] = dims[last]! * size;
      operands.forEach((s, k) => {
        strides[k]![last] = s[d]!;
      });
      continue;
    }
    dims.push(size);
    operands.forEach((s, k) => strides[k]!.push(s[d]!));
  }
  if (dims.length === 0) return { shape: [1], strides: operands.map(() => [0]) };
  return { shape: dims, strides };
}

/** Lowest and highest element offsets a view touches (shape without zeros). */
export function viewExtent(offset: number, shape: readonly number[], strides: readonly number[]): { lo: number; hi: number } {
  let lo = offset;
  let hi = offset;
  for (let d = 0; d < shape.length; d++) {
    const reach = (shape[d]! - 1) * strides[d]!;
    if (reach < 0) lo += reach;
    else hi += reach;
  }
  return { lo, hi };
}
