import { readFixtureTensor } from '../helpers/fixtures.js';

/** Reference data produced by bitsandbytes 0.50.2.dev0 (pure-torch path); see test/fixtures/README.md. */
export const NF4_REF = 'nf4-ref.safetensors';

export async function refF32(name: string): Promise<Float32Array> {
  const t = await readFixtureTensor(NF4_REF, name);
  if (!(t.data instanceof Float32Array)) throw new Error(`${NF4_REF}:${name} is ${t.dtype}, expected float32`);
  return t.data;
}

export async function refU8(name: string): Promise<Uint8Array> {
  const t = await readFixtureTensor(NF4_REF, name);
  if (t.dtype !== 'uint8' || !(t.data instanceof Uint8Array)) throw new Error(`${NF4_REF}:${name} is ${t.dtype}, expected uint8`);
  return t.data;
}

export async function refShape(name: string): Promise<number[]> {
  return (await readFixtureTensor(NF4_REF, name)).shape;
}

/** Largest |a[i] - b[i]|; NaN when lengths differ. */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return NaN;
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}
