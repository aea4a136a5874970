import { fmaF32 } from './fma-f32.js';
import { QuantError } from './errors.js';

/**
 * torch.linspace(start, end, steps, dtype=float32) on the CPU: the first half counts up from start, the second
 * half down from end. torch's vectorized (AVX2) kernel build contracts start + step * i into one fused
 * multiply-add; the reference map carries that rounding (a separate multiply and add differs in 42 of 256 entries).
 */
function torchLinspaceF32(startValue: number, endValue: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 0) return out;
  const start = Math.fround(startValue);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const end = Math.fround(endValue);
  const step = Math.fround(Math.fround(end - start) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) {
    out[i] = i < halfway ? fmaF32(step, i, start) : fmaF32(-step, steps - i - 1, end);
  }
  return out;
}

/** Float32 midpoints of neighbouring linspace(0.1, 1, items) values, each times `scale` (float32 multiply). */
function scaledMeans(items: number, scale: number): number[] {
  const boundaries = torchLinspaceF32(0.1, 1, items);
  const scale32 = Math.fround(scale);
  const out: number[] = [];
  for (let k = 0; k + 1 < boundaries.length; k++) {
    out.push(Math.fround(scale32 * Math.fround((boundaries[k]! + boundaries[k + 1]!) / 2)));
  }
  return out;
}

/** 10**exponent as Python evaluates it (an int for exponent >= 0, else the correctly rounded float). */
function powerOfTen(exponent: number): number {
  return Number(`1e${exponent}`);
}

/**
 * bitsandbytes' `create_dynamic_map`: the 8-bit dynamic-exponent code used for blockwise 8-bit quantization
 * (and so for double-quantized NF4 absmax). Sorted ascending, float32, 256 entries for the default 8 total bits
 * (zero-padded to 256 when fewer). Reproduces bnb's arithmetic step by step so the values are bit-identical.
 */
export function createDynamicMap(signed = true, maxExponentBits = 7, totalBits = 8): Float32Array {
  const data: number[] = [];
  const nonSignBits = totalBits - 1;
  const additionalItems = 2 ** (nonSignBits - maxExponentBits) - 1;
  // bnb reuses the loop variable after the loop for the additional items (Python's for-loop leaks it).
  let lastExponentIndex = 0;
  for (let i = 0; i < maxExponentBits; i++) {
    lastExponentIndex = i;
    const fractionItems = Math.trunc(signed ? 2 ** (i + nonSignBits - maxExponentBits) + 1 : 2 ** (i + nonSignBits - maxExponentBits + 1) + 1);
    const scale = powerOfTen(-(maxExponentBits - 1) + i);
    data.push(...scaledMeans(fractionItems, scale));
    if (signed) data.push(...scaledMeans(fractionItems, -scale));
  }
  if (additionalItems > 0) {
    const scale = powerOfTen(-(maxExponentBits - 1) + lastExponentIndex);
    data.push(...scaledMeans(additionalItems + 1, scale));
    if (signed) data.push(...scaledMeans(additionalItems + 1, -scale));
  }
  data.push(0, 1);
  if (data.length !== 2 ** totalBits) {
    throw new QuantError(
      `createDynamicMap(signed=${signed}, maxExponentBits=${maxExponentBits}, totalBits=${totalBits}) yields ${data.length} values instead of ${2 ** totalBits}; bitsandbytes rejects this combination too.`,
    );
  }
  while (data.length < 256) data.push(0);
  data.sort((x, y) => x - y);
  return Float32Array.from(data);
}
