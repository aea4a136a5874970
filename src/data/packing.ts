import type { TokenizedExample } from './tokenize.js';

/**
 * Concatenates consecutive examples into rows of at most `seqLen` tokens, never splitting an example (each is
 * already truncated to seqLen). Attention and positions run across the joined examples, as in TRL's plain
 * packing; the first token of each joined example keeps its label, so it is predicted from the previous one.
 */
export function packExamples(examples: readonly TokenizedExample[], seqLen: number): TokenizedExample[] {
  const rows: TokenizedExample[] = [];
  let current: TokenizedExample = { inputIds: [], labels: [] };
  for (const ex of examples) {
    if (current.inputIds.length + ex.inputIds.length > seqLen && current.inputIds.length > 0) {
      rows.push(current);
      current = { inputIds: [], labels: [] };
    }
    current.inputIds.push(...ex.inputIds);
    current.labels.push(...ex.labels);
  }
  if (current.inputIds.length > 0) rows.push(current);
  return rows;
}
