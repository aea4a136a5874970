import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { makeResult, sameDevice } from './engine.js';
import { embedding } from './nn-ops.js';
import { compact } from './shape-ops.js';

/**
 * out [rows, dim] with out[index[i], :] = sum of src[i, :] over every i naming that row (torch's index_add_ into
 * zeros; a row no index names stays 0). index: int32 [count] below `rows`. Backward: d(src) = d(out)[index], the
 * row gather, so this is the embedding lookup's transpose and runs on its kernels.
 */
export function scatterAddRows(src: Tensor, index: Tensor, rows: number): Tensor {
  if (src.rank !== 2 || index.rank !== 1 || index.shape[0] !== src.shape[0] || index.dtype !== 'int32') {
    throw new Error(`scatterAddRows takes src [count, dim] and an int32 index [count]; got ${formatShape(src.shape)} and ${index.dtype} ${formatShape(index.shape)}.`);
  }
  const s = compact(src);
  const idx = compact(index);
  const dim = s.shape[1]!;
  const backend = sameDevice(s, idx);
  const out = backend.alloc(s.dtype, rows * dim);
  backend.embeddingBackward(idx.buffer, s.buffer, s.shape[0]!, dim, out);
  return makeResult(out, [rows, dim], 'scatterAddRows', [s], (g) => [embedding(idx, g)]);
}
