import type { PeftModel } from '../peft/index.js';
import type { DropoutControl } from './trainable-model.js';

/**
 * Training mode and the dropout generator of a PeftModel, for the Trainer (dropout on while training, off for
 * evaluation; the generator's state goes into checkpoints so that a resumed run draws the same masks).
 */
export function peftDropoutControl(peft: PeftModel): DropoutControl {
  return { rng: peft.dropoutRng, setTraining: (on) => void peft.train(on) };
}
