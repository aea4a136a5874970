import type { CausalLMInput, CausalLMOutput } from '../models/causal-lm.js';
import type { Rng } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * What the Trainer needs from a model: PeftModel provides it (so does any model with trainable tensors that
 * can save itself). `trainableParameters()` keys are the names saved checkpoints use.
 */
export interface TrainableModel {
  run(input: CausalLMInput): CausalLMOutput;
  /** The loss of run() alone, which a model may compute without materialising the logits (CausalLM.runLoss). */
  runLoss(input: CausalLMInput & { labels: number[][] | Tensor }): Tensor;
  trainableParameters(): Map<string, Tensor>;
  savePretrained(dir: string): Promise<void>;
}

/** Optional hooks for models with dropout: training mode on/off and the generator whose state a checkpoint keeps. */
export interface DropoutControl {
  setTraining(training: boolean): void;
  readonly rng: Rng;
}
