/** A mistake in how loraforge was called (flag, config file, folder state): printed as one sentence, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
