import assert from 'node:assert/strict';
import { sgemm, type SgemmArgs } from '../../src/backend/cpu/gemm.js';
import { gemmOperand } from './gemm.js';

/**
 * GEMM problems with offsets, padded leading dimensions and batch strides, and their float64 reference.
 * Error bound per element: (k + 2) * 2^-23 * (|alpha| * sum_p |a_ip b_pj| + |beta c_ij|), twice the classic
 * float32 dot-product bound.
 */

export interface Shape {
  m: number; n: number; k: number; transA: boolean; transB: boolean;
  batch?: number; alpha?: number; beta?: number;
  /** Extra elements per row beyond the width (leading dimension padding). */
  pad?: number;
  /** 0 broadcasts that operand across the batch. */
  broadcastA?: boolean; broadcastB?: boolean;
  shared?: boolean;
}

/** Builds operands with offsets, padded leading dimensions and batch strides; C starts as random values. */
export function makeProblem(s: Shape, seed: number): SgemmArgs {
  const batch = s.batch ?? 1, pad = s.pad ?? 3;
  const aRows = s.transA ? s.k : s.m, aCols = s.transA ? s.m : s.k;
  const bRows = s.transB ? s.n : s.k, bCols = s.transB ? s.k : s.n;
  const lda = aCols + pad, ldb = bCols + pad + 1, ldc = s.n + pad + 2;
  const strideA = s.broadcastA ? 0 : aRows * lda + 5;
  const strideB = s.broadcastB ? 0 : bRows * ldb + 1;
  const strideC = s.m * ldc + 7;
  const aOffset = 13, bOffset = 5, cOffset = 9;
  return {
    m: s.m, n: s.n, k: s.k, transA: s.transA, transB: s.transB,
    a: gemmOperand(aOffset + (batch - 1) * strideA + aRows * lda + 4, seed, s.shared), aOffset, lda,
    b: gemmOperand(bOffset + (batch - 1) * strideB + bRows * ldb + 4, seed + 1, s.shared), bOffset, ldb,
    c: gemmOperand(cOffset + (batch - 1) * strideC + s.m * ldc + 4, seed + 2, s.shared), cOffset, ldc,
    alpha: s.alpha ?? 1, beta: s.beta ?? 0, batch, strideA, strideB, strideC,
  };
}

/** Expected C (a full copy of the array) and per-element error bounds, in float64. */
export function reference(p: SgemmArgs): { expected: Float64Array; bound: Float64Array } {
  const expected = Float64Array.from(p.c);
  const bound = new Float64Array(p.c.length);
  const u = 2 ** -23;
  for (let item = 0; item < p.batch; item++) {
    const aBase = p.aOffset + item * p.strideA, bBase = p.bOffset + item * p.strideB, cBase = p.cOffset + item * p.strideC;
    for (let i = 0; i < p.m; i++) {
      for (let j = 0; j < p.n; j++) {
        let sum = 0, magnitude = 0;
        for (let l = 0; l < p.k; l++) {
          const av = p.transA ? p.a[aBase + l * p.lda + i]! : p.a[aBase + i * p.lda + l]!;
          const bv = p.transB ? p.b[bBase + j * p.ldb + l]! : p.b[bBase + l * p.ldb + j]!;
          sum += av * bv;
          magnitude += Math.abs(av * bv);
        }
        const at = cBase + i * p.ldc + j;
        const old = p.beta === 0 ? 0 : p.beta * expected[at]!;
        // BLAS semantics: with alpha = 0 the product is not formed, so NaN in A or B does not reach C.
        expected[at] = (p.alpha === 0 ? 0 : p.alpha * sum) + old;
        bound[at] = (p.k + 2) * u * ((p.alpha === 0 ? 0 : Math.abs(p.alpha) * magnitude) + Math.abs(old)) + 1e-30;
      }
    }
  }
  return { expected, bound };
}

/** Runs `run` (sgemm) and checks every element of C's array: computed ones within bound, all others untouched. */
export function checkAgainstReference(p: SgemmArgs, label: string, run: (p: SgemmArgs) => void = sgemm): void {
  const { expected, bound } = reference(p);
  run(p);
  for (let i = 0; i < p.c.length; i++) {
    const got = p.c[i]!;
    if (bound[i] === 0) {
      assert.ok(Object.is(got, Math.fround(expected[i]!)), `${label}: element ${i} outside C changed to ${got}`);
    } else if (!(Math.abs(got - expected[i]!) <= bound[i]!)) {
      assert.fail(`${label}: C element ${i} = ${got}, expected ${expected[i]} within ${bound[i]}`);
    }
  }
}

