/**
 * GELU for the CPU backend. JavaScript has no Math.erf, so `erf` here is a float64 one; the two forward maps
 * follow torch's float32 kernels operation by operation (each product and sum rounded to float32, erf and tanh
 * evaluated in float64 and rounded once). Against torch 1.13's scalar CPU kernels (glibc erff, tanhf) on float32
 * inputs that gives the same bits for 99% (gelu) and 94% (geluTanh) of x, at most 4 ulp apart for x > -1. Below
 * that both round 1 + erf(x / sqrt 2) (or 1 + tanh(...)) to float32, so a last-bit difference of erff shows as an
 * absolute one of about |x| 2^-24, as between torch's own kernels (its vectorized CPU gelu uses an erf accurate to
 * 1.5e-7 only). The gradients (d/da f(a) * b) are computed in float64 and rounded once by the caller's store.
 */

const f = Math.fround;
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

// erf(x) for |x| < 6 as a degree-DEGREE Taylor polynomial about the nearest centre c = k / 4 (|x - c| <= 1/8).
// The coefficients are built once from exact relations, not fitted: erf(c) from the series
// erf(c) = 2/sqrt(pi) e^(-c^2) sum_n (2c^2)^n c / (1 * 3 * ... * (2n+1)) (all terms positive, so no
// cancellation) below c = 1 and as 1 - erfc(c) from erfc's continued fraction from c = 1 on, and
// erf^(n)(c) / n! = 2/sqrt(pi) e^(-c^2) (-1)^(n-1) H_(n-1)(c) / n! with the physicists' Hermite polynomials H.
// The first omitted term is below 1e-19 everywhere, so the error is that of float64 arithmetic (a few units in
// the last place). For |x| >= 6, erf(x) rounds to +-1 in float64.
const CENTRES_PER_UNIT = 4;
const ERF_LIMIT = 6;
const DEGREE = 16;
const CENTRES = ERF_LIMIT * CENTRES_PER_UNIT + 1;
const ERF_TAYLOR = buildErfTaylor();

function erfAtCentre(c: number): number {
  if (c >= 1) {
    // erfc(c) = e^(-c^2) / sqrt(pi) / (c + (1/2) / (c + (2/2) / (c + (3/2) / ...))), evaluated from the tail.
    let k = 0;
    for (let n = 300; n >= 1; n--) k = n / 2 / (c + k);
    return 1 - Math.exp(-c * c) / Math.sqrt(Math.PI) / (c + k);
  }
  const twoC2 = 2 * c * c;
  let term = c;
  let sum = c;
  for (let n = 1; term > sum * 1e-18; n++) {
    term *= twoC2 / (2 * n + 1);
    sum += term;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-c * c) * sum;
}

function buildErfTaylor(): Float64Array {
  const out = new Float64Array(CENTRES * (DEGREE + 1));
  for (let k = 0; k < CENTRES; k++) {
    const c = k / CENTRES_PER_UNIT;
    const row = k * (DEGREE + 1);
    const scale = TWO_OVER_SQRT_PI * Math.exp(-c * c);
    out[row] = k === 0 ? 0 : erfAtCentre(c);
    let hPrev = 0; // H_(m-1)
    let h = 1; // H_m, starting at m = 0
    let factorial = 1;
    for (let n = 1; n <= DEGREE; n++) {
      const m = n - 1;
      factorial *= n;
      out[row + n] = (scale * (m % 2 === 0 ? h : -h)) / factorial;
      const next = 2 * c * h - 2 * m * hPrev;
      hPrev = h;
      h = next;
    }
  }
  return out;
}

/** The error function in float64 (a few ulp; erf(-x) = -erf(x), erf(+-inf) = +-1, NaN stays NaN). */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (!(ax < ERF_LIMIT)) return Number.isNaN(x) ? x : x < 0 ? -1 : 1;
  const k = Math.round(ax * CENTRES_PER_UNIT);
  const h = ax - k / CENTRES_PER_UNIT;
  const row = k * (DEGREE + 1);
  let p = ERF_TAYLOR[row + DEGREE]!;
  for (let n = DEGREE - 1; n >= 0; n--) p = p * h + ERF_TAYLOR[row + n]!;
  return x < 0 ? -p : p;
}

// torch's constants, as float32: kAlpha = M_SQRT1_2, kBeta = M_SQRT2 * M_2_SQRTPI * 0.5 (= sqrt(2/pi)),
// kKappa = 0.044715.
const ALPHA = f(Math.SQRT1_2);
const BETA = f(Math.SQRT2 * (2 / Math.sqrt(Math.PI)) * 0.5);
const KAPPA = f(0.044715);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** Exact GELU of a float32 value as torch computes it: x * 0.5 * (1 + erf(x * kAlpha)) in float32. */
export function gelu(x: number): number {
  return f(f(x * 0.5) * f(1 + f(erf(f(x * ALPHA)))));
}

/** Tanh GELU of a float32 value as torch computes it: 0.5 * x * (1 + tanh(kBeta * (x + kKappa * x^3))) in float32. */
export function geluTanh(x: number): number {
  const cube = f(f(x * x) * x);
  const inner = f(BETA * f(x + f(KAPPA * cube)));
  return f(f(0.5 * x) * f(1 + f(Math.tanh(inner))));
}

/** d/da gelu(a) * b = (Phi(a) + a phi(a)) * b, in float64. */
export function geluGrad(a: number, b: number): number {
  const cdf = 0.5 * (1 + erf(a * Math.SQRT1_2));
  const pdf = INV_SQRT_2PI * Math.exp(-0.5 * a * a);
  return (cdf + a * pdf) * b;
}

/** d/da geluTanh(a) * b, in float64, with the float32 constants the forward uses. */
export function geluTanhGrad(a: number, b: number): number {
  const a2 = a * a;
  const t = Math.tanh(BETA * (a + KAPPA * a2 * a));
  return (0.5 * (1 + t) + 0.5 * a * (1 - t * t) * BETA * (1 + 3 * KAPPA * a2)) * b;
}
