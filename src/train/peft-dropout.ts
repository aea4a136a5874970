import type { PeftModel } from '../peft/index.js';
import type { Rng } from '../tensor/random.js';
import type { DropoutControl } from './trainable-model.js';

/**
 * Training mode and the dropout generator of a PeftModel, for the Trainer (dropout on while training, off for
 * evaluation; the generator's state goes into checkpoints so that a resumed run draws the same masks).
 * PeftModel keeps its generator in its private runtime state; it is read here, in one place.
 */
export function peftDropoutControl(peft: PeftModel): DropoutControl {
  const rng = (peft as unknown as { state?: { rng?: Rng } }).state?.rng;
  if (!rng || typeof rng.getState !== 'function') throw new Error('Internal error: PeftModel no longer exposes its dropout generator to the trainer.');
  return { rng, setTraining: (on) => void peft.train(on) };
}
