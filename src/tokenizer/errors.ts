/**
 * A tokenizer folder, one of its files, or a chat-template call is not usable. The message is one sentence that names
 * the file (or template) and says how to fix it; callers show it to people as is.
 */
export class TokenizerError extends Error {
  override readonly name = 'TokenizerError';
  /** The file or folder the message is about. */
  readonly path: string;

  constructor(path: string, message: string) {
    super(message);
    this.path = path;
  }
}
