import { thinSvd } from './dense-linalg.js';

/**
 * Truncated SVD of M = B A with B [m, R] and A [R, n] (row-major, float64), without forming M: thin QR of B and
 * of A^T, then the SVD of the small core Rb Ra^T by one-sided Jacobi. Exact up to rounding for any R, cheap while
 * R (the summed LoRA ranks) is small. Returns the top-k factors the way PEFT's svd combination stores them:
 * loraB = U_k diag(S_k) [m, k] and loraA = V_k^T [k, n]; components beyond rank(M) come out as zeros.
 */
export function lowRankSvd(b: Float64Array, a: Float64Array, m: number, rank: number, n: number, k: number): { loraB: Float64Array; loraA: Float64Array } {
  const qrB = thinQr(b, m, rank);
  const qrA = thinQr(transpose(a, rank, n), n, rank);
  const core = new Float64Array(rank * rank);
  for (let i = 0; i < rank; i++) {
    for (let j = 0; j < rank; j++) {
      let s = 0;
      for (let t = 0; t < rank; t++) s += qrB.r[i * rank + t]! * qrA.r[j * rank + t]!;
      core[i * rank + j] = s;
    }
  }
  const { u, sigma, v } = jacobiSvd(core, rank);
  const order = Array.from(sigma.keys()).sort((x, y) => sigma[y]! - sigma[x]!);
  const loraB = new Float64Array(m * k);
  const loraA = new Float64Array(k * n);
  for (let c = 0; c < Math.min(k, rank); c++) {
    const j = order[c]!;
    for (let i = 0; i < m; i++) {
      let s = 0;
      for (let t = 0; t < rank; t++) s += qrB.q[i * rank + t]! * u[t * rank + j]!;
      loraB[i * k + c] = s * sigma[j]!;
    }
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let t = 0; t < rank; t++) s += qrA.q[i * rank + t]! * v[t * rank + j]!;
      loraA[c * n + i] = s;
    }
  }
  return { loraB, loraA };
}

function transpose(x: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = x[i * cols + j]!;
  return out;
}

/**
 * x [rows, cols] = q r with orthonormal columns in q [rows, cols] and r [cols, cols] upper triangular: modified
 * Gram-Schmidt with one re-orthogonalisation pass. A column that is (numerically) a combination of earlier ones
 * gets a zero column in q and a zero diagonal in r, which keeps q r = x.
 */
function thinQr(x: Float64Array, rows: number, cols: number): { q: Float64Array; r: Float64Array } {
  const q = Float64Array.from(x);
  const r = new Float64Array(cols * cols);
  for (let j = 0; j < cols; j++) {
    let original = 0;
    for (let i = 0; i < rows; i++) original += q[i * cols + j]! ** 2;
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < j; p++) {
        let d = 0;
        for (let i = 0; i < rows; i++) d += q[i * cols + p]! * q[i * cols + j]!;
        r[p * cols + j]! += d;
        for (let i = 0; i < rows; i++) q[i * cols + j]! -= d * q[i * cols + p]!;
      }
    }
    let norm = 0;
    for (let i = 0; i < rows; i++) norm += q[i * cols + j]! ** 2;
    norm = Math.sqrt(norm);
    const independent = norm > 1e-12 * Math.sqrt(original);
    r[j * cols + j] = independent ? norm : 0;
    for (let i = 0; i < rows; i++) q[i * cols + j] = independent ? q[i * cols + j]! / norm : 0;
  }
  return { q, r };
}

/** SVD of a square matrix c [n, n] = u diag(sigma) v^T by one-sided (Hestenes) Jacobi rotations on the columns. */
function jacobiSvd(c: Float64Array, n: number): { u: Float64Array; sigma: Float64Array; v: Float64Array } {
  const w = Float64Array.from(c);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  const rotate = (x: Float64Array, p: number, q: number, cos: number, sin: number) => {
    for (let i = 0; i < n; i++) {
      const xp = x[i * n + p]!;
      const xq = x[i * n + q]!;
      x[i * n + p] = cos * xp - sin * xq;
      x[i * n + q] = sin * xp + cos * xq;
    }
  };
  for (let sweep = 0; sweep < 60; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < n; i++) {
          const xp = w[i * n + p]!;
          const xq = w[i * n + q]!;
          alpha += xp * xp;
          beta += xq * xq;
          gamma += xp * xq;
        }
        if (Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const cos = 1 / Math.sqrt(1 + t * t);
        rotate(w, p, q, cos, cos * t);
        rotate(v, p, q, cos, cos * t);
      }
    }
    if (!rotated) break;
  }
  const sigma = new Float64Array(n);
  const u = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let norm = 0;
    for (let i = 0; i < n; i++) norm += w[i * n + j]! ** 2;
    sigma[j] = Math.sqrt(norm);
    for (let i = 0; i < n; i++) u[i * n + j] = sigma[j]! > 0 ? w[i * n + j]! / sigma[j]! : 0;
  }
  return { u, sigma, v };
}

/** Thin SVD of a dense matrix: u [m, k], sigma [k] (descending), vt [k, n], k = min(m, n); row-major float64. */
export interface DenseSvd {
  readonly m: number;
  readonly n: number;
  readonly u: Float64Array;
  readonly sigma: Float64Array;
  readonly vt: Float64Array;
}

/**
 * SVD of x [m, n] (row-major) in float64: what torch.linalg.svd computes, up to the sign of each singular pair
 * (and rotations within repeated singular values), which no product U diag(S) Vh depends on (dense-linalg's
 * one-sided Jacobi).
 */
export function denseSvd(x: Float64Array, m: number, n: number): DenseSvd {
  const { u, s, vt } = thinSvd(x, m, n);
  return { m, n, u, sigma: s, vt };
}

/** PEFT's truncation: loraB = U[:, :r] diag(S[:r]) [m, r], loraA = Vh[:r] [r, n] (r <= min(m, n)). */
export function truncateSvd(svd: DenseSvd, r: number): { loraB: Float64Array; loraA: Float64Array } {
  const k = svd.sigma.length;
  const loraB = new Float64Array(svd.m * r);
  for (let i = 0; i < svd.m; i++) for (let c = 0; c < r; c++) loraB[i * r + c] = svd.u[i * k + c]! * svd.sigma[c]!;
  return { loraB, loraA: svd.vt.slice(0, r * svd.n) };
}
