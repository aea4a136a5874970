import { cat, narrow } from '../ops/index.js';
import type { Tensor } from '../tensor/tensor.js';

/** A maximal run of consecutive batch rows that use the same adapter. */
export interface RowRun {
  readonly name: string;
  readonly start: number;
  readonly length: number;
  /** Where the run's rows start inside its adapter's gathered sub-batch. */
  readonly offset: number;
}

/** Splits per-row adapter names into runs, and gives each adapter's runs in row order. */
export function rowRuns(rowAdapters: readonly string[]): { runs: RowRun[]; byAdapter: Map<string, RowRun[]> } {
  const runs: RowRun[] = [];
  const byAdapter = new Map<string, RowRun[]>();
  const gathered = new Map<string, number>();
  let start = 0;
  for (let i = 1; i <= rowAdapters.length; i++) {
    if (i < rowAdapters.length && rowAdapters[i] === rowAdapters[start]) continue;
    const name = rowAdapters[start]!;
    const offset = gathered.get(name) ?? 0;
    const run = { name, start, length: i - start, offset };
    runs.push(run);
    gathered.set(name, offset + run.length);
    byAdapter.set(name, [...(byAdapter.get(name) ?? []), run]);
    start = i;
  }
  return { runs, byAdapter };
}

/** Rows [start, start+length) of `t` along dim 0; `t` itself when that is every row. */
export function rowsOf(t: Tensor, start: number, length: number): Tensor {
  return start === 0 && length === t.shape[0] ? t : narrow(t, 0, start, length);
}

/** The rows of `t` (dim 0) covered by `runs`, concatenated in order. */
export function gatherRows(t: Tensor, runs: readonly RowRun[]): Tensor {
  const parts = runs.map((r) => rowsOf(t, r.start, r.length));
  return parts.length === 1 ? parts[0]! : cat(parts, 0);
}

/** Rebuilds a full batch from per-run pieces (each piece holds exactly its run's rows), in row order. */
export function assembleRows(runs: readonly RowRun[], pieceOf: (run: RowRun) => Tensor): Tensor {
  const parts = runs.map(pieceOf);
  return parts.length === 1 ? parts[0]! : cat(parts, 0);
}

/**
 * `base` with each batch row replaced by its adapter's output: rows are grouped by adapter, `compute(name, input,
 * base)` runs once per adapter over its rows (gathered), and the pieces come back in row order. Rows whose adapter
 * `has` does not know (the base model's) keep base; when no row has a known adapter, base itself is returned.
 */
export function routeRowsByAdapter(
  rowAdapters: readonly string[],
  input: Tensor,
  base: Tensor,
  has: (name: string) => boolean,
  compute: (name: string, input: Tensor, base: Tensor) => Tensor,
): Tensor {
  const { runs, byAdapter } = rowRuns(rowAdapters);
  const outputs = new Map<string, Tensor>();
  for (const [name, adapterRuns] of byAdapter) {
    if (has(name)) outputs.set(name, compute(name, gatherRows(input, adapterRuns), gatherRows(base, adapterRuns)));
  }
  if (outputs.size === 0) return base;
  return assembleRows(runs, (run) => {
    const out = outputs.get(run.name);
    return out ? rowsOf(out, run.offset, run.length) : rowsOf(base, run.start, run.length);
  });
}

/** A batch whose rows of each adapter come from `compute(name, thoseRows)`, run once per adapter, in row order. */
export function mapRowsByAdapter(rowAdapters: readonly string[], input: Tensor, compute: (name: string, input: Tensor) => Tensor): Tensor {
  const { runs, byAdapter } = rowRuns(rowAdapters);
  const outputs = new Map<string, Tensor>();
  for (const [name, adapterRuns] of byAdapter) outputs.set(name, compute(name, gatherRows(input, adapterRuns)));
  return assembleRows(runs, (run) => rowsOf(outputs.get(run.name)!, run.offset, run.length));
}
