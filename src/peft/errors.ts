/**
 * A LoRA/PEFT request that cannot be carried out as asked: an adapter that does not fit the base model, a target
 * that matches nothing, an adapter name that is not loaded. The message is one sentence naming the thing and the fix.
 */
export class PeftError extends Error {
  override readonly name = 'PeftError';
}
