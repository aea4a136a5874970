import { configureGemm } from '../../src/backend/cpu/gemm.js';

/** Whether a CBLAS library loads on this machine (the CPU GEMM's 'openblas' implementation); leaves 'auto' set. */
export function blasLoads(): boolean {
  try {
    configureGemm({ implementation: 'openblas' });
    return true;
  } catch {
    return false;
  } finally {
    configureGemm({ implementation: 'auto' });
  }
}

/** Deterministic values in [-1, 1) (xorshift32), over a SharedArrayBuffer unless `shared` is false. */
export function gemmOperand(length: number, seed: number, shared = true): Float32Array {
  const out = new Float32Array(shared ? new SharedArrayBuffer(length * 4) : new ArrayBuffer(length * 4));
  let s = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 0x100000000) * 2 - 1;
  }
  return out;
}
