import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { configureGemm, gemmInfo, sgemm, sgemmBatchInvariant, sgemmBuiltIn, sgemv, type GemmImplementation, type SgemmArgs } from '../../src/backend/cpu/gemm.js';
import { blasLoads, gemmOperand } from '../helpers/gemm.js';
import { checkAgainstReference, makeProblem, reference } from '../helpers/gemm-reference.js';

/**
 * sgemm against a float64 reference (test/helpers/gemm-reference.ts), for each implementation: the built-in
 * WebAssembly kernel on one thread, on the worker pool (forced onto tiny problems, with 3 threads so that two
 * workers share the units), and CBLAS when a library loads.
 */

const GEMM_MODULE = fileURLToPath(new URL('../../src/backend/cpu/gemm.js', import.meta.url));

/** A one-row product C = x op(B) run as sgemv: y = op(B)^T x with B as the row-major matrix. */
function asGemv(p: SgemmArgs): void {
  sgemv({
    rows: p.transB ? p.n : p.k, cols: p.transB ? p.k : p.n, trans: !p.transB, a: p.b, aOffset: p.bOffset, lda: p.ldb,
    x: p.a, xOffset: p.aOffset, y: p.c, yOffset: p.cOffset, alpha: p.alpha, beta: p.beta,
  });
}

/**
 * Row i of an m-row product against the same row computed alone, bit for bit, for m from 1 to 70 at shifting
 * positions, every transpose, alpha and beta, and k beyond one depth block of the built-in kernel (256).
 */
function checkRowInvariance(run: (p: SgemmArgs) => void): void {
  const total = 70;
  for (const [n, k] of [[37, 700], [130, 300], [9, 257]] as const) {
    for (const [transA, transB] of TRANSPOSES) {
      // Row i of op(A): row i of a [total, k] matrix, or column i of a [k, total] one.
      const a = gemmOperand(total * k, n + k), b = gemmOperand(n * k, n), c = gemmOperand(total * n, k);
      const product = (first: number, m: number): Float32Array => {
        const out = new Float32Array(new SharedArrayBuffer(4 * c.length));
        out.set(c);
        run({
          m, n, k, transA, transB, a, aOffset: transA ? first : first * k, lda: transA ? total : k, b, bOffset: 0, ldb: transB ? k : n,
          c: out, cOffset: first * n, ldc: n, alpha: 0.75, beta: 0.5, batch: 1, strideA: 0, strideB: 0, strideC: 0,
        });
        return out;
      };
      const alone = Array.from({ length: total }, (_, i) => product(i, 1).slice(i * n, (i + 1) * n));
      for (const m of [2, 3, 5, 8, 9, 33, 64, 70]) {
        const first = total - m;
        const out = product(first, m);
        for (let i = first; i < total; i++) {
          assert.deepEqual(out.slice(i * n, (i + 1) * n), alone[i], `row ${i} of ${m} (n ${n}, k ${k}, transA=${transA}, transB=${transB})`);
        }
      }
    }
  }
}

const SIZES: [number, number, number][] = [
  [1, 1, 1], [1, 17, 3], [3, 1, 17], [3, 17, 65], [17, 3, 1], [4, 4, 4], [5, 9, 300], [65, 129, 17], [129, 65, 129], [33, 130, 7],
];
const TRANSPOSES: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];

function suite(implementation: GemmImplementation): void {
  before(() => configureGemm({ implementation, threads: implementation === 'workers' ? 3 : 2, parallelMinFlops: 0 }));

  it('reports the implementation it runs', () => {
    assert.equal(gemmInfo().implementation, implementation);
  });

  it('matches the float64 reference for every transpose combination and odd sizes, with offsets and padded rows', () => {
    let seed = 1;
    for (const [m, n, k] of SIZES) {
      for (const [transA, transB] of TRANSPOSES) {
        checkAgainstReference(makeProblem({ m, n, k, transA, transB }, seed++), `${m}x${n}x${k} transA=${transA} transB=${transB}`);
      }
    }
  });

  it('handles leading dimensions much larger than the width', () => {
    for (const [transA, transB] of TRANSPOSES) {
      checkAgainstReference(makeProblem({ m: 19, n: 23, k: 29, transA, transB, pad: 101 }, 7), `pad 101 transA=${transA} transB=${transB}`);
    }
  });

  it('overwrites C when beta = 0, even where C holds NaN', () => {
    const p = makeProblem({ m: 37, n: 41, k: 13, transA: false, transB: true }, 3);
    for (let i = 0; i < p.m; i++) p.c.fill(Number.NaN, p.cOffset + i * p.ldc, p.cOffset + i * p.ldc + p.n);
    const copy = { ...p, c: new Float32Array(p.c.length) };
    sgemm(p);
    sgemm(copy);
    for (let i = 0; i < p.m; i++) {
      for (let j = 0; j < p.n; j++) assert.equal(p.c[p.cOffset + i * p.ldc + j], copy.c[p.cOffset + i * p.ldc + j]);
    }
  });

  it('scales the product by alpha and the old C by beta', () => {
    for (const [transA, transB] of TRANSPOSES) {
      checkAgainstReference(makeProblem({ m: 21, n: 34, k: 55, transA, transB, alpha: -0.75, beta: 0.5 }, 11), `alpha/beta transA=${transA}`);
      checkAgainstReference(makeProblem({ m: 21, n: 34, k: 55, transA, transB, alpha: 2, beta: 1 }, 12), `beta 1 transA=${transA}`);
    }
  });

  it('multiplies every batch item with its own strides', () => {
    for (const [transA, transB] of TRANSPOSES) {
      checkAgainstReference(makeProblem({ m: 17, n: 9, k: 33, transA, transB, batch: 5, beta: 0.25 }, 21), `batch transA=${transA} transB=${transB}`);
    }
  });

  it('broadcasts B across the batch when strideB = 0', () => {
    for (const [transA, transB] of TRANSPOSES) {
      checkAgainstReference(makeProblem({ m: 23, n: 18, k: 20, transA, transB, batch: 4, broadcastB: true }, 31), `broadcast B transA=${transA}`);
    }
    // Contiguous A and C items over a shared B: the same product as one taller matrix.
    const p = makeProblem({ m: 30, n: 12, k: 16, transA: false, transB: true, batch: 3, broadcastB: true }, 32);
    checkAgainstReference({ ...p, strideA: p.m * p.lda, strideC: p.m * p.ldc }, 'broadcast B, contiguous items');
  });

  it('broadcasts A across the batch when strideA = 0', () => {
    for (const [transA, transB] of TRANSPOSES) {
      checkAgainstReference(makeProblem({ m: 14, n: 27, k: 9, transA, transB, batch: 3, broadcastA: true, beta: -1 }, 41), `broadcast A transA=${transA}`);
    }
  });

  it('applies batch items in order when they share C (strideC = 0)', () => {
    const p = makeProblem({ m: 6, n: 7, k: 8, transA: false, transB: false, batch: 3, beta: 1 }, 51);
    const expected = Float64Array.from(p.c);
    for (let item = 0; item < p.batch; item++) {
      const { expected: step } = reference({ ...p, batch: 1, aOffset: p.aOffset + item * p.strideA, bOffset: p.bOffset + item * p.strideB, c: Float32Array.from(expected) });
      expected.set(step);
    }
    sgemm({ ...p, strideC: 0 });
    for (let i = 0; i < p.m; i++) {
      for (let j = 0; j < p.n; j++) {
        const at = p.cOffset + i * p.ldc + j;
        assert.ok(Math.abs(p.c[at]! - expected[at]!) < 1e-4, `C[${i}][${j}] = ${p.c[at]}, expected ${expected[at]}`);
      }
    }
  });

  it('computes C = beta * C without reading A or B when k = 0 or alpha = 0', () => {
    const p = makeProblem({ m: 5, n: 6, k: 7, transA: false, transB: false, alpha: 0, beta: 0.5 }, 61);
    p.a.fill(Number.NaN);
    checkAgainstReference(p, 'alpha 0');
    const q = makeProblem({ m: 5, n: 6, k: 0, transA: true, transB: true, beta: 0 }, 62);
    q.c.fill(Number.NaN);
    sgemm(q);
    for (let i = 0; i < q.m; i++) assert.deepEqual([...q.c.subarray(q.cOffset + i * q.ldc, q.cOffset + i * q.ldc + q.n)], [0, 0, 0, 0, 0, 0]);
  });

  it('leaves C untouched when m or n is 0', () => {
    const p = makeProblem({ m: 3, n: 4, k: 5, transA: false, transB: false }, 71);
    const before = Float32Array.from(p.c);
    sgemm({ ...p, m: 0 });
    sgemm({ ...p, n: 0 });
    assert.deepEqual(p.c, before);
  });

  it('accepts operands on ordinary ArrayBuffers', () => {
    for (const [transA, transB] of TRANSPOSES) {
      checkAgainstReference(makeProblem({ m: 45, n: 31, k: 27, transA, transB, batch: 2, beta: 0.5, shared: false }, 81), `unshared transA=${transA}`);
    }
  });

  it('splits a larger problem into many units with the same result', () => {
    checkAgainstReference(makeProblem({ m: 300, n: 290, k: 270, transA: false, transB: true, beta: 1 }, 91), '300x290x270');
  });

  it('sgemmBatchInvariant matches the float64 reference, with batches, shared C, beta = 0 over NaN and k = 0', () => {
    let seed = 201;
    for (const [m, n, k] of [...SIZES, [9, 37, 700]] as [number, number, number][]) {
      for (const [transA, transB] of TRANSPOSES) {
        checkAgainstReference(makeProblem({ m, n, k, transA, transB, alpha: -0.75, beta: 0.5 }, seed++), `${m}x${n}x${k} transA=${transA} transB=${transB}`, sgemmBatchInvariant);
      }
    }
    for (const [transA, transB] of TRANSPOSES) {
      checkAgainstReference(makeProblem({ m: 17, n: 9, k: 33, transA, transB, batch: 3, beta: 0.25 }, seed++), `batch transA=${transA}`, sgemmBatchInvariant);
    }
    const shared = makeProblem({ m: 6, n: 7, k: 8, transA: false, transB: false, batch: 3, beta: 1 }, seed++);
    const looped = { ...shared, c: Float32Array.from(shared.c) };
    for (let item = 0; item < 3; item++) sgemm({ ...looped, batch: 1, aOffset: looped.aOffset + item * looped.strideA, bOffset: looped.bOffset + item * looped.strideB });
    sgemmBatchInvariant({ ...shared, strideC: 0 });
    for (let i = 0; i < shared.c.length; i++) assert.ok(Math.abs(shared.c[i]! - looped.c[i]!) < 1e-4, `shared C element ${i}`);
    const nan = makeProblem({ m: 5, n: 6, k: 300, transA: false, transB: true }, seed++);
    nan.c.fill(Number.NaN);
    sgemmBatchInvariant(nan);
    for (let i = 0; i < nan.m; i++) {
      const row = nan.c.subarray(nan.cOffset + i * nan.ldc, nan.cOffset + i * nan.ldc + nan.n);
      assert.ok(row.every((v) => Number.isFinite(v)), `beta = 0 must ignore NaN in C (row ${i})`);
    }
    const empty = makeProblem({ m: 5, n: 6, k: 0, transA: true, transB: true, beta: 0.5 }, seed++);
    checkAgainstReference(empty, 'k = 0', sgemmBatchInvariant);
  });

  it('sgemmBatchInvariant gives each row of C the same bits whatever the row count and its neighbours', () => {
    checkRowInvariance(sgemmBatchInvariant);
  });

  it('sgemmBuiltIn matches the float64 reference, gives each row the same bits whatever the row count, and ignores a zero tail of the depth', () => {
    let seed = 900;
    for (const [m, n, k] of SIZES) {
      for (const [transA, transB] of TRANSPOSES) checkAgainstReference(makeProblem({ m, n, k, transA, transB }, seed++), `${m}x${n}x${k}`, sgemmBuiltIn);
    }
    checkRowInvariance(sgemmBuiltIn);
    // Attention's P V over a block wider than a row's keys: zeros past them change no bit (k across depth blocks).
    for (const [k, wide] of [[100, 164], [300, 700]] as const) {
      const n = 24, m = 6;
      const b = gemmOperand(wide * n, k);
      const a = new Float32Array(new SharedArrayBuffer(4 * m * wide));
      const values = gemmOperand(m * k, k + 1);
      for (let i = 0; i < m; i++) a.set(values.subarray(i * k, (i + 1) * k), i * wide);
      const run = (depth: number): Float32Array => {
        const c = new Float32Array(new SharedArrayBuffer(4 * m * n));
        sgemmBuiltIn({ m, n, k: depth, transA: false, transB: false, a, aOffset: 0, lda: wide, b, bOffset: 0, ldb: n, c, cOffset: 0, ldc: n, alpha: 1, beta: 0, batch: 1, strideA: 0, strideB: 0, strideC: 0 });
        return c;
      };
      assert.deepEqual(run(wide), run(k), `depth ${k} against ${wide} with a zero tail`);
    }
  });

  if (implementation !== 'openblas') {
    it('the built-in sgemm is batch-invariant itself: each row of C has the same bits whatever the row count', () => {
      checkRowInvariance(sgemm);
    });
  }

  it('sgemv matches the float64 reference of op(A) x for both layouts, with alpha, beta and padded rows', () => {
    let seed = 301;
    for (const [rows, cols] of [[1, 1], [7, 300], [300, 7], [33, 65], [16, 1408]] as const) {
      for (const trans of [false, true]) {
        // As a one-row GEMM: x is op(A)'s row, the matrix is op(B) = A^T (trans) or A^T transposed (not trans).
        const p = makeProblem({ m: 1, n: trans ? cols : rows, k: trans ? rows : cols, transA: false, transB: !trans, alpha: 1.5, beta: trans ? 0 : -0.5 }, seed++);
        checkAgainstReference(p, `sgemv ${rows}x${cols} trans=${trans}`, asGemv);
      }
    }
  });

  it('sgemv overwrites y when beta = 0, even where y holds NaN, and refuses operands outside their arrays', () => {
    const p = makeProblem({ m: 1, n: 19, k: 23, transA: false, transB: true }, 311);
    p.c.fill(Number.NaN);
    asGemv(p);
    assert.ok(p.c.subarray(p.cOffset, p.cOffset + p.n).every((v) => Number.isFinite(v)));
    assert.throws(() => asGemv({ ...p, aOffset: p.a.length - 5 }), /sgemv: x needs 23 elements/);
    assert.throws(() => asGemv({ ...p, bOffset: p.b.length - 5 }), /sgemv: A \(19 x 23/);
    assert.throws(() => asGemv({ ...p, cOffset: p.c.length - 5 }), /sgemv: y needs 19 elements/);
  });

  it('rejects operands that do not fit their arrays, naming the operand', () => {
    const p = makeProblem({ m: 8, n: 8, k: 8, transA: false, transB: false }, 101);
    assert.throws(() => sgemm({ ...p, aOffset: p.a.length - 10 }), /sgemm: A .* reaches element/);
    assert.throws(() => sgemm({ ...p, batch: 2, strideA: 0, strideB: p.b.length, strideC: 0 }), /sgemm: B .* reaches element/);
    assert.throws(() => sgemm({ ...p, ldc: 4 }), /ldc = 4 is smaller than the 8 columns/);
    assert.throws(() => sgemm({ ...p, m: -1 }), /m must be a non-negative integer/);
  });
}

describe('sgemm, built-in WebAssembly kernel on one thread', () => suite('single-thread'));
describe('sgemm, built-in WebAssembly kernel on worker threads', () => suite('workers'));
describe('sgemm through CBLAS', { skip: blasLoads() ? false : 'no CBLAS library on this machine' }, () => suite('openblas'));

describe('gemm implementation selection', () => {
  /** Runs a script in a child Node process with extra environment variables; returns its stdout. */
  function child(script: string, env: Record<string, string>): { stdout: string; stderr: string; status: number | null } {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
    return { stdout: r.stdout, stderr: r.stderr, status: r.status };
  }

  const product = `
    import { sgemm, gemmInfo, configureGemm } from ${JSON.stringify(GEMM_MODULE)};
    configureGemm({ parallelMinFlops: 0 });
    const sab = (n) => new Float32Array(new SharedArrayBuffer(4 * n));
    const a = sab(64 * 64).fill(1), b = sab(64 * 64).fill(2), c = sab(64 * 64);
    sgemm({ m: 64, n: 64, k: 64, transA: false, transB: false, a, aOffset: 0, lda: 64, b, bOffset: 0, ldb: 64, c, cOffset: 0, ldc: 64,
      alpha: 1, beta: 0, batch: 1, strideA: 0, strideB: 0, strideC: 0 });
    console.log(JSON.stringify({ info: gemmInfo(), c0: c[0], cLast: c[64 * 64 - 1] }));`;

  it('LORAFORGE_BLAS=none runs the built-in kernel on worker threads', () => {
    const r = child(product, { LORAFORGE_BLAS: 'none', LORAFORGE_GEMM_THREADS: '2' });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { info: { implementation: string; threads: number }; c0: number; cLast: number };
    assert.deepEqual(out, { info: { implementation: 'workers', threads: 2 }, c0: 128, cLast: 128 });
  });

  it('LORAFORGE_GEMM_THREADS=1 runs on the calling thread', () => {
    const r = child(product, { LORAFORGE_BLAS: 'none', LORAFORGE_GEMM_THREADS: '1' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { info: { implementation: 'single-thread', threads: 1 }, c0: 128, cLast: 128 });
  });

  it('LORAFORGE_BLAS naming a missing library is an error that names the variable', () => {
    const r = child(product, { LORAFORGE_BLAS: '/nonexistent/libopenblas.so' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /LORAFORGE_BLAS=\/nonexistent\/libopenblas\.so: could not open it as a CBLAS library/);
  });

  it('an idle worker pool does not keep the process alive', () => {
    const start = Date.now();
    const r = child(product, { LORAFORGE_BLAS: 'none', LORAFORGE_GEMM_THREADS: '3' });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(Date.now() - start < 30_000);
  });

  it("'openblas' is refused with an installation hint when no library loads", () => {
    const r = child(`import { configureGemm } from ${JSON.stringify(GEMM_MODULE)}; configureGemm({ implementation: 'openblas' });`, { LORAFORGE_BLAS: 'none' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /no CBLAS library could be loaded; install OpenBLAS/);
  });
});
