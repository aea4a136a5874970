/**
 * Nearest-code search as bitsandbytes' pure-torch backend does it: `torch.bucketize(x, (code[:-1] + code[1:]) / 2)`
 * over a sorted code, with the midpoints computed in float32.
 */

/** Float32 midpoints between neighbouring entries of a code sorted ascending (length code.length - 1). */
export function codeMidpoints(code: Float32Array): Float32Array {
  const bounds = new Float32Array(code.length - 1);
  for (let i = 0; i < bounds.length; i++) bounds[i] = (code[i]! + code[i + 1]!) / 2;
  return bounds;
}

/**
 * torch.bucketize with right=False: the number of bounds strictly below x, so a value exactly on a midpoint
 * takes the lower code. The `!(bound >= x)` test is torch's: NaN counts as above every bound (last code).
 */
export function bucketize(x: number, bounds: Float32Array): number {
  let lo = 0;
  let hi = bounds.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (!(bounds[mid]! >= x)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
