/**
 * xgrammar's token bitmask: bit (id & 31) of word (id >> 5) is set when token `id` is allowed. Tokens past the
 * mask's last word are not allowed.
 */
export type TokenMask = Int32Array;

export function maskAllows(mask: TokenMask, id: number): boolean {
  return ((mask[id >> 5] ?? 0) >>> (id & 31)) & 1 ? true : false;
}

/** Sets the scores of the tokens `mask` does not allow to -Infinity, so that no sampler or argmax picks them. */
export function applyTokenMask(scores: Float32Array, mask: TokenMask): void {
  for (let word = 0; word * 32 < scores.length; word++) {
    const bits = mask[word] ?? 0;
    if (bits === -1) continue;
    const end = Math.min(scores.length, word * 32 + 32);
    if (bits === 0) {
      scores.fill(-Infinity, word * 32, end);
      continue;
    }
    for (let id = word * 32; id < end; id++) if (!((bits >>> (id & 31)) & 1)) scores[id] = -Infinity;
  }
}

/** Clears `ids` from a copy of `mask`. */
export function withoutTokens(mask: TokenMask, ids: Iterable<number>): TokenMask {
  const out = mask.slice();
  for (const id of ids) if (id >> 5 < out.length) out[id >> 5] = out[id >> 5]! & ~(1 << (id & 31));
  return out;
}
