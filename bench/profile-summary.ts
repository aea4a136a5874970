import type { ProfileEntry } from '../src/backend/cuda/profiler.js';

/** Device time by kernel kind (GEMMs as one kind; op codes dropped), largest first, for a bench's profile line. */
export function kernelsByKind(entries: readonly ProfileEntry[]): { kind: string; calls: number; ms: number }[] {
  const byKind = new Map<string, { calls: number; ms: number }>();
  for (const e of entries) {
    const kind = e.name.startsWith('gemm') ? 'gemm' : e.name.split(':')[0]!;
    const k = byKind.get(kind) ?? { calls: 0, ms: 0 };
    k.calls += e.calls;
    k.ms += e.ms;
    byKind.set(kind, k);
  }
  return [...byKind].sort((x, y) => y[1].ms - x[1].ms).map(([kind, k]) => ({ kind, calls: k.calls, ms: +k.ms.toFixed(3) }));
}
