/** Training cannot go on or resume: one sentence naming the file or step, and what to do. */
export class TrainingError extends Error {
  override name = 'TrainingError';
}
