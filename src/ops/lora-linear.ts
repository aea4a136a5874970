import type { Backend } from '../backend/backend.js';
import type { DeviceBuffer } from '../tensor/buffer.js';
import { noGrad } from '../tensor/grad-mode.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { to } from './creation.js';
import { makeResult, sameDevice } from './engine.js';
import { compact, reshape } from './shape-ops.js';

/**
 * A frozen base weight [out, in]: a tensor, or a function that materializes it (a 4-bit weight) each time it is
 * needed and returns a fresh tensor, which the op disposes once its GEMM is queued.
 */
export type FrozenWeight = Tensor | (() => Tensor);

/** C = alpha * op(A) op(B) + beta * C over compact 2-D tensors (row-major), C written at element 0 of `c`. */
function gemm(backend: Backend, a: Tensor, transA: boolean, b: Tensor, transB: boolean, c: DeviceBuffer, alpha: number, beta: number): void {
  const m = transA ? a.shape[1]! : a.shape[0]!;
  const k = transA ? a.shape[0]! : a.shape[1]!;
  const n = transB ? b.shape[0]! : b.shape[1]!;
  backend.matmul({
    a: a.buffer, aOffset: a.offset, b: b.buffer, bOffset: b.offset, c, cOffset: 0,
    m, n, k, transA, transB, lda: a.shape[1]!, ldb: b.shape[1]!, ldc: n,
    batch: 1, strideA: 0, strideB: 0, strideC: 0, alpha, beta,
  });
}

/**
 * LoRA linear as one op: y = x W^T + scaling * (x A^T) B^T, with W [out, in] frozen, A [r, in] and B [out, r]
 * trainable. The adapter product is accumulated into the base GEMM's output (beta = 1), so a LoRA layer costs the
 * base GEMM plus two GEMMs with inner size r and no elementwise pass over [N, out]. The adapter runs in x's dtype
 * (A and B are rounded to it, as under autocast), with float32 accumulation in every GEMM.
 *
 * Backward, with g = dy and h = x A^T [N, r] saved from the forward pass:
 *   dh = scaling * g B             [N, r]
 *   dA = dh^T x                    [r, in]   (A's dtype)
 *   dB = scaling * g^T h           [out, r]  (B's dtype)
 *   dx = g W + dh A                [N, in]   (the second GEMM accumulates into the first's output)
 * W is materialized again in the backward pass when it is given as a function, so no dense copy outlives a GEMM.
 */
export function loraLinear(x: Tensor, weight: FrozenWeight, a: Tensor, b: Tensor, scaling: number): Tensor {
  const inF = x.shape[x.rank - 1]!;
  const r = a.shape[0]!;
  const outF = b.shape[0]!;
  if (a.rank !== 2 || b.rank !== 2 || a.shape[1] !== inF || b.shape[1] !== r) {
    throw new Error(`loraLinear: A ${formatShape(a.shape)} and B ${formatShape(b.shape)} do not fit an input of ${inF} features (A must be [r, ${inF}], B [out, r]).`);
  }
  const backend = sameDevice(x, a, b);
  const dtype = x.dtype;
  const N = x.numel / inF;
  /** The weight in x's dtype, and the tensors made for it (disposed by release once the GEMM is queued). */
  const materialize = (): { w: Tensor; made: Tensor[] } => {
    const fresh = typeof weight === 'function';
    const w = fresh ? weight() : weight;
    if (w.rank !== 2 || w.shape[0] !== outF || w.shape[1] !== inF) throw new Error(`loraLinear: the base weight ${formatShape(w.shape)} is not [${outF}, ${inF}].`);
    const cast = compact(w.dtype === dtype ? w : to(w, { dtype }));
    return { w: cast, made: [...(fresh ? [w] : []), ...(cast !== w ? [cast] : [])] };
  };
  const release = (m: { made: Tensor[] }): void => {
    for (const t of m.made) t.dispose();
  };

  const { x2, aC, bC, h, y } = noGrad(() => {
    const x2 = compact(reshape(x, [N, inF]));
    const aC = compact(to(a, { dtype }));
    const bC = compact(to(b, { dtype }));
    const base = materialize();
    const y = backend.allocUninitialized(dtype, N * outF);
    gemm(backend, x2, false, base.w, true, y, 1, 0);
    release(base);
    const hBuf = backend.allocUninitialized(dtype, N * r);
    const h = makeResult(hBuf, [N, r], 'loraDown', [], null);
    gemm(backend, x2, false, aC, true, hBuf, 1, 0);
    gemm(backend, h, false, bC, true, y, scaling, 1);
    return { x2, aC, bC, h, y };
  });

  return makeResult(y, [...x.shape.slice(0, -1), outF], 'loraLinear', [x, a, b], (gOut) => {
    const g = compact(reshape(gOut, [N, outF]));
    const dhBuf = backend.allocUninitialized(dtype, N * r);
    const dh = makeResult(dhBuf, [N, r], 'loraDownGrad', [], null);
    gemm(backend, g, false, bC, false, dhBuf, scaling, 0);
    let dA: Tensor | null = null;
    if (a.requiresGrad) {
      const buf = backend.allocUninitialized(a.dtype, r * inF);
      gemm(backend, dh, true, x2, false, buf, 1, 0);
      dA = makeResult(buf, a.shape, 'loraAGrad', [], null);
    }
    let dB: Tensor | null = null;
    if (b.requiresGrad) {
      const buf = backend.allocUninitialized(b.dtype, outF * r);
      gemm(backend, g, true, h, false, buf, scaling, 0);
      dB = makeResult(buf, b.shape, 'loraBGrad', [], null);
    }
    let dx: Tensor | null = null;
    if (x.requiresGrad) {
      const buf = backend.allocUninitialized(dtype, N * inF);
      const base = materialize();
      gemm(backend, g, false, base.w, false, buf, 1, 0);
      release(base);
      gemm(backend, dh, false, aC, false, buf, 1, 1);
      dx = makeResult(buf, x.shape, 'loraInputGrad', [], null);
    }
    return [dx, dA, dB];
  });
}
