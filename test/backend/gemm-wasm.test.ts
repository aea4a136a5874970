import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { SgemmArgs } from '../../src/backend/cpu/gemm.js';
import { GemmWorkspace } from '../../src/backend/cpu/gemm-kernel.js';
import { validateModule } from '../../src/backend/cpu/wasm/runtime.js';
import { sgemmModuleBytes } from '../../src/backend/cpu/wasm/sgemm-module.js';
import { gemmOperand } from '../helpers/gemm.js';
import { checkAgainstReference, makeProblem } from '../helpers/gemm-reference.js';

/**
 * The WebAssembly side of the built-in SGEMM: the module it emits, and the kernels driven through one
 * GemmWorkspace (one thread's instance), with no worker pool in between.
 */

const TRANSPOSES: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];

/** The whole product through one workspace. */
function onWorkspace(ws: GemmWorkspace): (p: SgemmArgs) => void {
  return (p) => {
    for (let item = 0; item < p.batch; item++) ws.gemmBlock(p, item, 0, p.m, 0, p.n);
  };
}

/**
 * The documented arithmetic of every element, in f32 one operation at a time: per depth block of 256, the
 * products summed in depth order from -0, then C = alpha * s (+ beta * C, beta = 1 after the first block).
 */
function scalarModel(p: SgemmArgs): Float32Array {
  const c = Float32Array.from(p.c);
  const f = Math.fround;
  const alpha = f(p.alpha);
  for (let i = 0; i < p.m; i++) {
    for (let j = 0; j < p.n; j++) {
      const at = p.cOffset + i * p.ldc + j;
      for (let p0 = 0; p0 < p.k; p0 += 256) {
        let s = -0;
        for (let q = p0; q < Math.min(p.k, p0 + 256); q++) {
          const a = p.transA ? p.a[p.aOffset + q * p.lda + i]! : p.a[p.aOffset + i * p.lda + q]!;
          const b = p.transB ? p.b[p.bOffset + j * p.ldb + q]! : p.b[p.bOffset + q * p.ldb + j]!;
          s = f(s + f(a * b));
        }
        const beta = p0 === 0 ? f(p.beta) : 1;
        c[at] = beta === 0 ? f(alpha * s) : f(f(alpha * s) + f(beta * c[at]!));
      }
    }
  }
  return c;
}

describe('built-in WebAssembly SGEMM kernels on one workspace', () => {
  const ws = new GemmWorkspace();
  const run = onWorkspace(ws);

  it('emits a kernel module that validates', () => {
    assert.equal(validateModule(sgemmModuleBytes(48)), true);
  });

  it('matches the float64 reference for every m, n, k in 1..17 and every transpose', () => {
    let seed = 1000;
    for (let m = 1; m <= 17; m++) {
      for (let n = 1; n <= 17; n++) {
        for (const k of [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17]) {
          for (const [transA, transB] of TRANSPOSES) {
            checkAgainstReference(makeProblem({ m, n, k, transA, transB, alpha: -0.75, beta: 0.5 }, seed++), `${m}x${n}x${k} transA=${transA} transB=${transB}`, run);
          }
        }
      }
    }
  });

  it('matches the float64 reference across depth and column blocks (k 700, n 1100) and with long rows of A', () => {
    let seed = 2000;
    for (const [m, n, k] of [[2, 1100, 700], [9, 1100, 300], [6, 150, 4100], [130, 70, 520]] as const) {
      for (const [transA, transB] of TRANSPOSES) {
        checkAgainstReference(makeProblem({ m, n, k, transA, transB, alpha: 1.5, beta: -1 }, seed++), `${m}x${n}x${k} transA=${transA} transB=${transB}`, run);
      }
    }
  });

  it('computes every element with the documented f32 operations, bit for bit, on both kernels', () => {
    let seed = 3000;
    // m 3 runs row by row, m 9 and 21 in tiles with a ragged last one; k 600 spans three depth blocks.
    for (const [m, n, k] of [[3, 45, 600], [9, 45, 600], [21, 33, 257]] as const) {
      for (const [transA, transB] of TRANSPOSES) {
        for (const beta of [0, 0.5]) {
          const p = makeProblem({ m, n, k, transA, transB, alpha: 0.75, beta }, seed++);
          const expected = scalarModel(p);
          run(p);
          assert.deepEqual(p.c, expected, `${m}x${n}x${k} transA=${transA} transB=${transB} beta=${beta}`);
        }
      }
    }
  });

  it('gives each row the same bits alone and in any block of 1..17 rows, on either kernel', () => {
    const total = 17, n = 150, k = 300;
    for (const [transA, transB] of TRANSPOSES) {
      const a = gemmOperand(total * k, 7), b = gemmOperand(n * k, 8), c0 = gemmOperand(total * n, 9);
      const block = (first: number, m: number): Float32Array => {
        const c = Float32Array.from(c0);
        run({
          m, n, k, transA, transB, a, aOffset: transA ? first : first * k, lda: transA ? total : k, b, bOffset: 0, ldb: transB ? k : n,
          c, cOffset: first * n, ldc: n, alpha: 0.75, beta: 0.5, batch: 1, strideA: 0, strideB: 0, strideC: 0,
        });
        return c;
      };
      const alone = Array.from({ length: total }, (_, i) => block(i, 1).slice(i * n, (i + 1) * n));
      for (let m = 2; m <= total; m++) {
        const out = block(total - m, m);
        for (let i = total - m; i < total; i++) assert.deepEqual(out.slice(i * n, (i + 1) * n), alone[i], `row ${i} of ${m} (transA=${transA}, transB=${transB})`);
      }
    }
  });

  it('computes a block of rows and columns of C and leaves the rest of C untouched', () => {
    const p = makeProblem({ m: 23, n: 40, k: 31, transA: false, transB: true, beta: 0.5 }, 4000);
    const whole = { ...p, c: Float32Array.from(p.c) };
    run(whole);
    const before = Float32Array.from(p.c);
    ws.gemmBlock(p, 0, 5, 14, 8, 29);
    for (let i = 0; i < p.m; i++) {
      for (let j = 0; j < p.n; j++) {
        const at = p.cOffset + i * p.ldc + j;
        const inside = i >= 5 && i < 14 && j >= 8 && j < 29;
        assert.equal(p.c[at], inside ? whole.c[at] : before[at], `C[${i}][${j}]`);
      }
    }
  });
});
