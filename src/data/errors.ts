/** Bad training data: the message names the file and, where there is one, the line (path:line: what, fix). */
export class DataError extends Error {
  override name = 'DataError';
}
