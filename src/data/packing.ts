import type { TokenizedExample } from './tokenize.js';

/**
 * Bin-packs examples into rows of at most `seqLen` tokens, first-fit decreasing: examples longest first (ties in
 * their given order), each into the first row with room for it, else a new row. No example is split (each is
 * already truncated to seqLen), and the result depends on the examples alone, so a rerun or a resume packs the
 * same rows (the trainer's seeded order then shuffles rows, not examples). Each row records the lengths of its
 * examples in `segmentLengths`, in order, so that training runs each example as if alone: positions restarting at
 * 0, attention within the example only, no target across its end (CausalLMInput.segmentLengths).
 */
export function packExamples(examples: readonly TokenizedExample[], seqLen: number): TokenizedExample[] {
  if (!(Number.isInteger(seqLen) && seqLen >= 1)) throw new Error(`packing needs a whole seq-len >= 1, got ${seqLen}.`);
  const order = examples.map((_, i) => i).sort((a, b) => examples[b]!.inputIds.length - examples[a]!.inputIds.length || a - b);
  const free = new FreeSpace(examples.length);
  const rows: TokenizedExample[] = [];
  for (const i of order) {
    const ex = examples[i]!;
    const n = ex.inputIds.length;
    if (n > seqLen) throw new Error(`an example of ${n} tokens cannot be packed into rows of ${seqLen}; truncate it first.`);
    if (n === 0) continue;
    let r = free.firstWithRoom(n);
    if (r === -1) {
      r = rows.length;
      rows.push({ inputIds: [], labels: [], segmentLengths: [] });
      free.set(r, seqLen);
    }
    const row = rows[r]!;
    for (let t = 0; t < n; t++) {
      row.inputIds.push(ex.inputIds[t]!);
      row.labels.push(ex.labels[t]!);
    }
    row.segmentLengths!.push(n);
    free.set(r, seqLen - row.inputIds.length);
  }
  return rows;
}

/** The room left in each row, in a max segment tree, so that the first row with room for n is found in log time. */
class FreeSpace {
  private readonly size: number;
  private readonly tree: Int32Array;
  constructor(capacity: number) {
    let size = 1;
    while (size < capacity) size *= 2;
    this.size = size;
    this.tree = new Int32Array(2 * size);
  }
  set(row: number, room: number): void {
    let i = this.size + row;
    this.tree[i] = room;
    for (i >>= 1; i >= 1; i >>= 1) this.tree[i] = Math.max(this.tree[2 * i]!, this.tree[2 * i + 1]!);
  }
  /** The lowest row with at least n free, or -1. */
  firstWithRoom(n: number): number {
    if (this.tree[1]! < n) return -1;
    let i = 1;
    while (i < this.size) i = this.tree[2 * i]! >= n ? 2 * i : 2 * i + 1;
    return i - this.size;
  }
}
