/**
 * A file on disk (or on the Hub) is missing or is not what its format promises. The message is one sentence that
 * names the file and says how to fix it; callers show it to people as is.
 */
export class FormatError extends Error {
  override readonly name = 'FormatError';
  /** The file (or folder, or URL) the message is about. */
  readonly path: string;

  constructor(path: string, message: string) {
    super(message);
    this.path = path;
  }
}

/** A download from the Hugging Face Hub failed; `status` is the HTTP status, or null when the server was unreachable. */
export class HubError extends Error {
  override readonly name = 'HubError';
  readonly url: string;
  readonly status: number | null;

  constructor(url: string, status: number | null, message: string) {
    super(message);
    this.url = url;
    this.status = status;
  }
}
