import type { Backend } from '../backend/backend.js';
import type { DeviceBuffer } from '../tensor/buffer.js';
import { noGrad } from '../tensor/grad-mode.js';
import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { to } from './creation.js';
import { makeResult, makeResults, sameDevice } from './engine.js';
import { cat, compact, reshape } from './shape-ops.js';

/**
 * A frozen base weight [out, in]: a tensor, or a function that materializes it (a 4-bit weight) each time it is
 * needed and returns a fresh tensor, which the op disposes once its GEMM is queued.
 */
export type FrozenWeight = Tensor | (() => Tensor);

/** A row-major matrix inside a buffer: rows x cols from element `offset`, rows `ld` elements apart. */
interface Operand {
  readonly buffer: DeviceBuffer;
  readonly offset: number;
  readonly rows: number;
  readonly cols: number;
  readonly ld: number;
}

/** A compact 2-D tensor as an Operand. */
function whole(t: Tensor): Operand {
  return { buffer: t.buffer, offset: t.offset, rows: t.shape[0]!, cols: t.shape[1]!, ld: t.shape[1]! };
}

/** Columns [col, col + cols) of a compact 2-D tensor (or of an Operand). */
function columns(t: Tensor | Operand, col: number, cols: number): Operand {
  const o = 'ld' in t ? t : whole(t);
  return { buffer: o.buffer, offset: o.offset + col, rows: o.rows, cols, ld: o.ld };
}

/** C = alpha * op(A) op(B) + beta * C (row-major); C written from c's offset with rows c.ld apart. */
function gemmOperands(backend: Backend, a: Operand, transA: boolean, b: Operand, transB: boolean, c: Operand, alpha: number, beta: number): void {
  const m = transA ? a.cols : a.rows;
  const k = transA ? a.rows : a.cols;
  const n = transB ? b.rows : b.cols;
  backend.matmul({
    a: a.buffer, aOffset: a.offset, b: b.buffer, bOffset: b.offset, c: c.buffer, cOffset: c.offset,
    m, n, k, transA, transB, lda: a.ld, ldb: b.ld, ldc: c.ld,
    batch: 1, strideA: 0, strideB: 0, strideC: 0, alpha, beta,
  });
}

/** C = alpha * op(A) op(B) + beta * C over compact 2-D tensors (row-major), C written at element 0 of `c`. */
function gemm(backend: Backend, a: Tensor, transA: boolean, b: Tensor, transB: boolean, c: DeviceBuffer, alpha: number, beta: number): void {
  const n = transB ? b.shape[0]! : b.shape[1]!;
  const m = transA ? a.shape[1]! : a.shape[0]!;
  gemmOperands(backend, whole(a), transA, whole(b), transB, { buffer: c, offset: 0, rows: m, cols: n, ld: n }, alpha, beta);
}

/** A frozen weight ready for a GEMM in the compute dtype, and the tensors made for it (release disposes them). */
interface Materialized {
  readonly w: Tensor;
  readonly made: readonly Tensor[];
}

function materializeWeight(weight: FrozenWeight, outF: number, inF: number, dtype: Tensor['dtype'], what: string): Materialized {
  const fresh = typeof weight === 'function';
  const w = fresh ? weight() : weight;
  if (w.rank !== 2 || w.shape[0] !== outF || w.shape[1] !== inF) throw new Error(`${what} ${formatShape(w.shape)} is not [${outF}, ${inF}].`);
  const cast = compact(w.dtype === dtype ? w : to(w, { dtype }));
  return { w: cast, made: [...(fresh ? [w] : []), ...(cast !== w ? [cast] : [])] };
}

/** Disposes what materializeWeight made, once the GEMM that reads it is queued. */
function release(m: Materialized): void {
  for (const t of m.made) t.dispose();
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
  const materialize = (): Materialized => materializeWeight(weight, outF, inF, dtype, 'loraLinear: the base weight');

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

/** One layer of loraLinearGroup: its frozen weight, adapter and scaling, as loraLinear takes them. */
export interface LoraGroupMember {
  readonly weight: FrozenWeight;
  readonly a: Tensor;
  readonly b: Tensor;
  readonly scaling: number;
}

/**
 * loraLinear for several layers that read the same input (q, k, v; gate, up), as one op with one output per
 * member. The down-projections run as one GEMM, H = x [A_1; ...; A_n]^T [N, R] (R = r_1 + ... + r_n), so x is read
 * once for all of them, and likewise dA = dH^T x; dx is one buffer that every member's g W and dH [A_1; ...; A_n]
 * accumulate into (beta = 1), instead of one [N, in] gradient per member summed afterwards. Each member computes
 * the function loraLinear computes; the sums of dx and the shared GEMMs may round differently.
 */
export function loraLinearGroup(x: Tensor, members: readonly LoraGroupMember[]): Tensor[] {
  if (members.length === 1) {
    const m = members[0]!;
    return [loraLinear(x, m.weight, m.a, m.b, m.scaling)];
  }
  const inF = x.shape[x.rank - 1]!;
  const backend = sameDevice(x, ...members.flatMap((m) => [m.a, m.b]));
  const dtype = x.dtype;
  const N = x.numel / inF;
  const ranks = members.map((m) => m.a.shape[0]!);
  const offsets = ranks.map((_, i) => ranks.slice(0, i).reduce((p, r) => p + r, 0));
  const R = ranks.reduce((p, r) => p + r, 0);
  members.forEach((m, i) => {
    if (m.a.rank !== 2 || m.b.rank !== 2 || m.a.shape[1] !== inF || m.b.shape[1] !== ranks[i]) {
      throw new Error(`loraLinearGroup: A ${formatShape(m.a.shape)} and B ${formatShape(m.b.shape)} of member ${i} do not fit an input of ${inF} features (A must be [r, ${inF}], B [out, r]).`);
    }
  });
  const aDtype = members[0]!.a.dtype;
  if (members.some((m) => m.a.dtype !== aDtype)) throw new Error('loraLinearGroup: the members\' A matrices have different dtypes; run them one by one.');
  const outFs = members.map((m) => m.b.shape[0]!);
  const materialize = (i: number): Materialized => materializeWeight(members[i]!.weight, outFs[i]!, inF, dtype, `loraLinearGroup: the base weight of member ${i}`);

  const { x2, aCat, bCs, h, ys } = noGrad(() => {
    const x2 = compact(reshape(x, [N, inF]));
    const aCat = compact(cat(members.map((m) => to(m.a, { dtype })), 0));
    const bCs = members.map((m) => compact(to(m.b, { dtype })));
    const h = makeResult(backend.allocUninitialized(dtype, N * R), [N, R], 'loraDownGroup', [], null);
    gemm(backend, x2, false, aCat, true, h.buffer, 1, 0);
    const ys = members.map((m, i) => {
      const y = backend.allocUninitialized(dtype, N * outFs[i]!);
      const base = materialize(i);
      gemm(backend, x2, false, base.w, true, y, 1, 0);
      release(base);
      gemmOperands(backend, columns(h, offsets[i]!, ranks[i]!), false, whole(bCs[i]!), true, { buffer: y, offset: 0, rows: N, cols: outFs[i]!, ld: outFs[i]! }, m.scaling, 1);
      return y;
    });
    return { x2, aCat, bCs, h, ys };
  });

  const lead = x.shape.slice(0, -1);
  const inputs = [x, ...members.flatMap((m) => [m.a, m.b])];
  return makeResults(ys.map((buffer, i) => ({ buffer, shape: [...lead, outFs[i]!] })), 'loraLinearGroup', inputs, (gOuts) => {
    const gs = gOuts.map((g, i) => (g ? compact(reshape(g, [N, outFs[i]!])) : null));
    // dH: member i's block is scaling_i g_i B_i, zero where member i got no gradient.
    const some = gs.some((g, i) => !g && ranks[i]! > 0);
    const dh = makeResult(some ? backend.alloc(dtype, N * R) : backend.allocUninitialized(dtype, N * R), [N, R], 'loraDownGroupGrad', [], null);
    gs.forEach((g, i) => {
      if (g) gemmOperands(backend, whole(g), false, whole(bCs[i]!), false, columns(dh, offsets[i]!, ranks[i]!), members[i]!.scaling, 0);
    });
    const grads: (Tensor | null)[] = [null];
    let dACat: Tensor | null = null;
    if (members.some((m, i) => m.a.requiresGrad && gs[i])) {
      dACat = makeResult(backend.allocUninitialized(aDtype, R * inF), [R, inF], 'loraAGroupGrad', [], null);
      gemm(backend, dh, true, x2, false, dACat.buffer, 1, 0);
    }
    members.forEach((m, i) => {
      // Member i's rows of dA_cat are one contiguous block (none where its output got no gradient, as apart); a gradient owns its storage from element 0 (the
      // optimizers update in place), so blocks after the first are copied out ([r, in]: small).
      grads.push(m.a.requiresGrad && dACat && gs[i] ? compact(makeResult(dACat.buffer, m.a.shape, 'loraAGrad', [], null, undefined, offsets[i]! * inF)) : null);
      const g = gs[i];
      if (m.b.requiresGrad && g) {
        const buf = backend.allocUninitialized(m.b.dtype, outFs[i]! * ranks[i]!);
        gemmOperands(backend, whole(g), true, columns(h, offsets[i]!, ranks[i]!), false, { buffer: buf, offset: 0, rows: outFs[i]!, cols: ranks[i]!, ld: ranks[i]! }, m.scaling, 0);
        grads.push(makeResult(buf, m.b.shape, 'loraBGrad', [], null));
      } else {
        grads.push(null);
      }
    });
    if (dACat) dACat.dispose();
    if (x.requiresGrad) {
      const buf = backend.allocUninitialized(dtype, N * inF);
      let beta = 0;
      gs.forEach((g, i) => {
        if (!g) return;
        const base = materialize(i);
        gemm(backend, g, false, base.w, false, buf, 1, beta);
        release(base);
        beta = 1;
      });
      gemm(backend, dh, false, aCat, false, buf, 1, 1);
      grads[0] = makeResult(buf, x.shape, 'loraInputGrad', [], null);
    }
    return grads;
  });
}
