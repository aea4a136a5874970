import type { Rng } from '../tensor/random.js';
import type { InitLoraWeights } from './config.js';

/**
 * Initial values of lora_A [rows, inFeatures], row-major, as PEFT draws them (in distribution; the generator is
 * ours): true: torch's nn.Linear init, kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)); "gaussian":
 * N(0, std = 1/r); false: PEFT keeps nn.Linear's own init, which is the same kaiming-uniform draw. rows is r, or
 * r x experts for an expert parameter (PEFT's ParamWrapper), whose gaussian std stays 1/r.
 */
export function initialLoraA(init: InitLoraWeights, rows: number, inFeatures: number, rng: Rng, r = rows): Float32Array {
  const out = new Float32Array(rows * inFeatures);
  if (init === 'gaussian') {
    for (let i = 0; i < out.length; i++) out[i] = rng.normal() / r;
    return out;
  }
  const bound = 1 / Math.sqrt(inFeatures);
  for (let i = 0; i < out.length; i++) out[i] = (2 * rng.next() - 1) * bound;
  return out;
}

/**
 * Initial values of lora_B [outFeatures, r]: zero, so that a fresh adapter leaves the model unchanged, except with
 * init false, where PEFT keeps nn.Linear's kaiming-uniform init (fan-in r) and the adapter changes the output at once.
 */
export function initialLoraB(init: InitLoraWeights, r: number, outFeatures: number, rng: Rng): Float32Array {
  const out = new Float32Array(outFeatures * r);
  if (init !== false) return out;
  const bound = 1 / Math.sqrt(r);
  for (let i = 0; i < out.length; i++) out[i] = (2 * rng.next() - 1) * bound;
  return out;
}
