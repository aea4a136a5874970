/**
 * Float32 fused multiply-add: a * b + c rounded once to float32 (round to nearest even), for float32 inputs.
 * a * b is exact in float64 (24 + 24 significant bits); the float64 sum can round only when its error term is
 * non-zero, and that changes the float32 result only when the float64 sum sits exactly halfway between two
 * float32 values, where the sign of the error decides.
 */
export function fmaF32(a: number, b: number, c: number): number {
  const product = a * b;
  const sum = product + c;
  const bVirtual = sum - product;
  const error = product - (sum - bVirtual) + (c - bVirtual);
  const rounded = Math.fround(sum);
  if (error === 0 || rounded === sum) return rounded;
  const toSum = sum - rounded;
  const mirrored = rounded + 2 * toSum;
  const isTie = Math.fround(mirrored) === mirrored;
  if (!isTie) return rounded;
  return Math.sign(error) === Math.sign(toSum) ? mirrored : rounded;
}
