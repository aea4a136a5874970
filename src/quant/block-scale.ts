/**
 * Blockwise absmax scaling shared by the 4-bit and 8-bit quantizers, in the float32 arithmetic of bitsandbytes'
 * pure-torch backend (`bitsandbytes/backends/default/ops.py`):
 * - a full block stores absmax = max|x| unclamped and scales by the float32 reciprocal:
 *   clamp(x * (1 / max(absmax, 1e-38)), -1, 1);
 * - a final partial block stores absmax = max(max|x|, 1e-38) and divides: clamp(x / absmax, -1, 1).
 * The two roundings differ in the last bit, so both are kept. 1e-38 is the float32 subnormal torch's clamp uses.
 * NaN propagates through max and clamp as in torch.
 */

const ABSMAX_FLOOR = Math.fround(1e-38);

function blockAbsmax(values: Float32Array, start: number, end: number): number {
  let m = 0;
  for (let i = start; i < end; i++) {
    const a = Math.abs(values[i]!);
    if (a !== a) return NaN;
    if (a > m) m = a;
  }
  return m;
}

function clampUnit(x: number): number {
  return x < -1 ? -1 : x > 1 ? 1 : x;
}

/**
 * Scales `values` block by block and hands each block's scaled values (a scratch array, valid only during the
 * call; `length` of them are set) to `visit`. Returns the per-block absmax (ceil(n / blocksize) entries).
 */
export function scaleBlockwise(
  values: Float32Array,
  blocksize: number,
  visit: (scaled: Float32Array, start: number, length: number) => void,
): Float32Array {
  const n = values.length;
  const fullBlocks = Math.floor(n / blocksize);
  const absmax = new Float32Array(Math.ceil(n / blocksize));
  const scratch = new Float32Array(blocksize);
  for (let b = 0; b < fullBlocks; b++) {
    const start = b * blocksize;
    const m = blockAbsmax(values, start, start + blocksize);
    absmax[b] = m;
    const reciprocal = Math.fround(1 / Math.max(m, ABSMAX_FLOOR));
    for (let i = 0; i < blocksize; i++) scratch[i] = clampUnit(Math.fround(values[start + i]! * reciprocal));
    visit(scratch, start, blocksize);
  }
  const start = fullBlocks * blocksize;
  if (start < n) {
    const m = Math.max(blockAbsmax(values, start, n), ABSMAX_FLOOR);
    absmax[fullBlocks] = m;
    for (let i = 0; i < n - start; i++) scratch[i] = clampUnit(Math.fround(values[start + i]! / m));
    visit(scratch, start, n - start);
  }
  return absmax;
}
