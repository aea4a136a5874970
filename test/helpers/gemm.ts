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
