import { registerBackend } from '../registry.js';
import { CpuBackend } from './cpu-backend.js';

export const cpuBackend = new CpuBackend();
registerBackend(cpuBackend);
export { CpuBackend };
