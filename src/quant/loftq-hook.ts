import { registerLoftqQuantizer } from '../peft/base-init.js';
import { dequantizeNf4, quantizeNf4 } from './nf4.js';

/** PEFT's LoftQ quantizes with bitsandbytes' Params4bit (nf4, blocksize 64, compress_statistics=False) and dequantizes to float32. */
export function registerLoftqNf4(): void {
  registerLoftqQuantizer((values) => {
    const q = quantizeNf4(values, 64);
    return dequantizeNf4(q.packed, q.absmax, values.length, 64);
  });
}
