import type { RopeScaling } from './config.js';

const f = Math.fround;

/**
 * Inverse frequencies theta^(-2i/d) in float32 as transformers computes them, with the linear or llama3
 * adjustment applied.
 */
export function ropeInvFreq(headDim: number, theta: number, scaling: RopeScaling): Float32Array {
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = f(1 / f(f(theta) ** f((2 * i) / headDim)));
  if (scaling.type === 'linear') for (let i = 0; i < half; i++) inv[i] = f(inv[i]! / scaling.factor);
  if (scaling.type === 'llama3') {
    const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: old } = scaling;
    const lowWavelen = old / lowFreqFactor;
    const highWavelen = old / highFreqFactor;
    for (let i = 0; i < half; i++) {
      const freq = inv[i]!;
      const wavelen = (2 * Math.PI) / freq;
      let adjusted = wavelen > lowWavelen ? freq / factor : freq;
      if (!(wavelen < highWavelen) && !(wavelen > lowWavelen)) {
        const smooth = (old / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        adjusted = ((1 - smooth) * adjusted) / factor + smooth * adjusted;
      }
      inv[i] = f(adjusted);
    }
  }
  return inv;
}

/** cos/sin tables [positions.length, headDim] (the half-dim frequencies repeated twice, rotate-half layout). */
export function ropeTables(invFreq: Float32Array, positions: ArrayLike<number>): { cos: Float32Array; sin: Float32Array } {
  const half = invFreq.length;
  const dim = half * 2;
  const cos = new Float32Array(positions.length * dim);
  const sin = new Float32Array(positions.length * dim);
  for (let p = 0; p < positions.length; p++) {
    const pos = positions[p]!;
    for (let i = 0; i < half; i++) {
      const angle = f(pos * invFreq[i]!);
      const c = f(Math.cos(angle));
      const s = f(Math.sin(angle));
      cos[p * dim + i] = c;
      cos[p * dim + i + half] = c;
      sin[p * dim + i] = s;
      sin[p * dim + i + half] = s;
    }
  }
  return { cos, sin };
}
