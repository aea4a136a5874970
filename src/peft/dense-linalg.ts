import type { Rng } from '../tensor/random.js';

/**
 * Dense float64 linear algebra on row-major host matrices for the initialisations that decompose a base weight
 * (PiSSA, OLoRA, orthogonal, LoftQ): Householder QR with LAPACK's sign convention, a thin SVD by one-sided Jacobi
 * rotations, and torch.svd_lowrank's randomized SVD. Plain TypeScript: a full SVD costs O(m n min(m, n)) per sweep,
 * fine for adapter-sized work and small models; for large weights prefer "pissa_niter_N", as PEFT's docs do.
 */

/** a [m, k] times b [k, n]. */
export function matmul64(a: Float64Array, b: Float64Array, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const row = i * n;
    for (let t = 0; t < k; t++) {
      const av = a[i * k + t]!;
      if (av === 0) continue;
      const brow = t * n;
      for (let j = 0; j < n; j++) out[row + j]! += av * b[brow + j]!;
    }
  }
  return out;
}

export function transpose64(x: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = x[i * cols + j]!;
  return out;
}

/**
 * Reduced QR of a [m, n]: q [m, k] with orthonormal columns and r [k, n] upper trapezoidal, k = min(m, n), as
 * LAPACK's geqrf + orgqr (torch.linalg.qr) compute it: Householder reflectors with beta = -sign(alpha) * norm, so
 * the signs of r's diagonal (and of q's columns) are LAPACK's.
 */
export function householderQr(a: Float64Array, m: number, n: number): { q: Float64Array; r: Float64Array } {
  const k = Math.min(m, n);
  const w = Float64Array.from(a);
  const vs: Float64Array[] = [];
  const taus = new Float64Array(k);
  for (let j = 0; j < k; j++) {
    const alpha = w[j * n + j]!;
    let xnorm = 0;
    for (let i = j + 1; i < m; i++) xnorm += w[i * n + j]! ** 2;
    xnorm = Math.sqrt(xnorm);
    const v = new Float64Array(m - j);
    v[0] = 1;
    vs.push(v);
    if (xnorm === 0) continue; // H = I: LAPACK's tau = 0, the diagonal keeps its sign
    const beta = -(alpha >= 0 ? 1 : -1) * Math.hypot(alpha, xnorm);
    const tau = (beta - alpha) / beta;
    taus[j] = tau;
    const inv = 1 / (alpha - beta);
    for (let i = j + 1; i < m; i++) v[i - j] = w[i * n + j]! * inv;
    w[j * n + j] = beta;
    for (let i = j + 1; i < m; i++) w[i * n + j] = 0;
    for (let c = j + 1; c < n; c++) {
      let d = 0;
      for (let i = j; i < m; i++) d += v[i - j]! * w[i * n + c]!;
      d *= tau;
      if (d === 0) continue;
      for (let i = j; i < m; i++) w[i * n + c]! -= d * v[i - j]!;
    }
  }
  const r = new Float64Array(k * n);
  for (let i = 0; i < k; i++) for (let c = i; c < n; c++) r[i * n + c] = w[i * n + c]!;
  const q = new Float64Array(m * k);
  for (let i = 0; i < k; i++) q[i * k + i] = 1;
  for (let j = k - 1; j >= 0; j--) {
    const tau = taus[j]!;
    if (tau === 0) continue;
    const v = vs[j]!;
    for (let c = j; c < k; c++) {
      let d = 0;
      for (let i = j; i < m; i++) d += v[i - j]! * q[i * k + c]!;
      d *= tau;
      if (d === 0) continue;
      for (let i = j; i < m; i++) q[i * k + c]! -= d * v[i - j]!;
    }
  }
  return { q, r };
}

/**
 * Thin SVD a [m, n] = u diag(s) vt with u [m, k], s [k] descending, vt [k, n], k = min(m, n) (torch.linalg.svd with
 * full_matrices=False, up to the signs of singular vector pairs): one-sided Jacobi rotations on the columns of the
 * tall orientation, to float64 convergence.
 */
export function thinSvd(a: Float64Array, m: number, n: number): { u: Float64Array; s: Float64Array; vt: Float64Array } {
  if (m < n) {
    const t = thinSvd(transpose64(a, m, n), n, m);
    // a^T = U S V^T  =>  a = V S U^T
    return { u: transpose64(t.vt, m, m), s: t.s, vt: transpose64(t.u, n, m) };
  }
  // m >= n: columns of a as separate arrays.
  const cols = Array.from({ length: n }, (_, j) => {
    const c = new Float64Array(m);
    for (let i = 0; i < m; i++) c[i] = a[i * n + j]!;
    return c;
  });
  const vcols = Array.from({ length: n }, (_, j) => {
    const c = new Float64Array(n);
    c[j] = 1;
    return c;
  });
  const rotate = (x: Float64Array, y: Float64Array, cos: number, sin: number) => {
    for (let i = 0; i < x.length; i++) {
      const xi = x[i]!;
      const yi = y[i]!;
      x[i] = cos * xi - sin * yi;
      y[i] = sin * xi + cos * yi;
    }
  };
  for (let sweep = 0; sweep < 80; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const gp = cols[p]!;
        const gq = cols[q]!;
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < m; i++) {
          const x = gp[i]!;
          const y = gq[i]!;
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (gamma === 0 || Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const cos = 1 / Math.sqrt(1 + t * t);
        rotate(gp, gq, cos, cos * t);
        rotate(vcols[p]!, vcols[q]!, cos, cos * t);
      }
    }
    if (!rotated) break;
  }
  const sigma = cols.map((c) => Math.sqrt(c.reduce((acc, x) => acc + x * x, 0)));
  const order = Array.from(sigma.keys()).sort((x, y) => sigma[y]! - sigma[x]!);
  const u = new Float64Array(m * n);
  const s = new Float64Array(n);
  const vt = new Float64Array(n * n);
  order.forEach((j, c) => {
    const sj = sigma[j]!;
    s[c] = sj;
    const col = cols[j]!;
    for (let i = 0; i < m; i++) u[i * n + c] = sj > 0 ? col[i]! / sj : 0;
    const vc = vcols[j]!;
    for (let i = 0; i < n; i++) vt[c * n + i] = vc[i]!;
  });
  return { u, s, vt };
}

/**
 * torch.svd_lowrank(a, q, niter) (Halko et al. 2009, algorithm 5.1, as torch/_lowrank.py runs it): work on the tall
 * orientation, Q = orth(A R) for a Gaussian R [cols, q], niter subspace iterations Q = orth(A^T Q), Q = orth(A Q),
 * then the SVD of Q^T A. Returns u [m, q], s [q], v [n, q] with a ~ u diag(s) v^T. R is drawn from `rng` (row-major,
 * rng.normal()), where torch draws it from its global generator: same algorithm, seeded by loraforge's Rng.
 */
export function svdLowRank(a: Float64Array, m: number, n: number, q: number, niter: number, rng: Rng): { u: Float64Array; s: Float64Array; v: Float64Array } {
  const wide = m < n;
  const A = wide ? transpose64(a, m, n) : a;
  const [rows, cols] = wide ? [n, m] : [m, n];
  const At = transpose64(A, rows, cols);
  const R = new Float64Array(cols * q);
  for (let i = 0; i < R.length; i++) R[i] = rng.normal();
  const k = Math.min(rows, q);
  let Q = householderQr(matmul64(A, R, rows, cols, q), rows, q).q; // [rows, k]
  for (let it = 0; it < niter; it++) {
    const kk = Math.min(cols, k);
    const Q1 = householderQr(matmul64(At, Q, cols, rows, k), cols, k).q; // [cols, kk]
    Q = householderQr(matmul64(A, Q1, rows, cols, kk), rows, kk).q;
  }
  const qk = Q.length / rows;
  const B = matmul64(transpose64(Q, rows, qk), A, qk, rows, cols); // [qk, cols]
  const svd = thinSvd(B, qk, cols);
  const kb = Math.min(qk, cols);
  const U = matmul64(Q, svd.u, rows, qk, kb); // [rows, kb]
  const V = transpose64(svd.vt, kb, cols); // [cols, kb]
  return wide ? { u: V, s: svd.s, v: U } : { u: U, s: svd.s, v: V };
}
