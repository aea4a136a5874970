import type { Tensor } from './tensor.js';

/**
 * Memory scopes: every tensor made inside scope() is disposed when it ends, unless it is returned, kept
 * (tensor.keep()), or is some parameter's .grad. A training step runs in one scope so its activations are
 * released deterministically, not on the garbage collector's schedule.
 */
const stack: Tensor[][] = [];

export function trackTensor(t: Tensor): void {
  const top = stack[stack.length - 1];
  if (top) top.push(t);
}

function collectReturned(value: unknown, out: Set<Tensor>, depth = 0): void {
  if (depth > 4 || value === null || typeof value !== 'object') return;
  if ((value as { buffer?: unknown; shape?: unknown }).shape !== undefined && 'gradFn' in (value as object)) {
    out.add(value as Tensor);
    return;
  }
  const items = Array.isArray(value) ? value : value instanceof Map ? [...value.values()] : Object.values(value);
  for (const v of items) collectReturned(v, out, depth + 1);
}

function endScope(made: Tensor[], result: unknown): void {
  const keep = new Set<Tensor>();
  collectReturned(result, keep);
  const parent = stack[stack.length - 1];
  for (const t of made) {
    if (keep.has(t) || t.kept) {
      if (parent) parent.push(t);
      continue;
    }
    t.dispose();
  }
}

export function scope<T>(fn: () => T): T {
  stack.push([]);
  let result: T | undefined;
  try {
    result = fn();
    return result;
  } finally {
    endScope(stack.pop()!, result);
  }
}

/** Async form: do not interleave two scopeAsync calls concurrently (one training or serving loop at a time). */
export async function scopeAsync<T>(fn: () => Promise<T>): Promise<T> {
  const made: Tensor[] = [];
  stack.push(made);
  let result: T | undefined;
  try {
    result = await fn();
    return result;
  } finally {
    const idx = stack.lastIndexOf(made);
    if (idx >= 0) stack.splice(idx, 1);
    endScope(made, result);
  }
}
