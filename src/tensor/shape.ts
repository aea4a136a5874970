/** Shape and stride arithmetic for row-major (C-order) tensors. Strides and offsets count elements, not bytes. */

export type Shape = readonly number[];

export function numelOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/** numpy broadcasting of two shapes; throws a clear error when they do not broadcast. */
export function broadcastShapes(a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`Shapes ${formatShape(a)} and ${formatShape(b)} do not broadcast; make the mismatched dimensions equal or 1.`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides that read a tensor of `shape`/`strides` as if it had `target` shape (0 on broadcast dimensions). */
export function broadcastStrides(shape: Shape, strides: readonly number[], target: Shape): number[] {
  const out = new Array<number>(target.length).fill(0);
  const off = target.length - shape.length;
  for (let i = 0; i < shape.length; i++) out[off + i] = shape[i] === 1 && target[off + i] !== 1 ? 0 : strides[i]!;
  return out;
}

/** Resolves one -1 in a requested shape against a known element count. */
export function inferShape(requested: Shape, numel: number): number[] {
  const out = [...requested];
  const idx = out.indexOf(-1);
  if (idx >= 0) {
    const known = out.reduce((p, d, i) => (i === idx ? p : p * d), 1);
    out[idx] = known === 0 ? 0 : numel / known;
  }
  if (numelOf(out) !== numel || out.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`Cannot reshape ${numel} elements into ${formatShape(requested)}.`);
  }
  return out;
}

export function normalizeDim(dim: number, rank: number): number {
  const d = dim < 0 ? dim + rank : dim;
  if (d < 0 || d >= rank) throw new Error(`Dimension ${dim} is out of range for a tensor of rank ${rank}.`);
  return d;
}
