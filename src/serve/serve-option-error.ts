/** A server option that cannot work (a missing --adapter-root, a malformed allowed host): found before listening. */
export class ServeOptionError extends Error {
  override name = 'ServeOptionError';
}
