import assert from 'node:assert/strict';

/** Largest |a - b| and largest |b| (the reference's scale). */
export function maxAbsDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): { diff: number; scale: number } {
  assert.equal(actual.length, expected.length, `length ${actual.length} != ${expected.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= diff)) diff = Number.isNaN(d) ? Infinity : d;
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return { diff, scale };
}

/** Asserts max |a - b| <= tol * max(1, max |b|): the project's "within tol, relative to scale" rule. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what = 'values'): void {
  const { diff, scale } = maxAbsDiff(actual, expected);
  assert.ok(diff <= tol * Math.max(1, scale), `${what}: max abs diff ${diff} exceeds ${tol} x scale ${Math.max(1, scale)}`);
}

export function seededValues(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

/** mulberry32: a 32-bit seeded generator of uniform numbers in [0, 1). */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
