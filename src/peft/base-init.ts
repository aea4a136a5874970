import { Linear } from '../nn/layers.js';
import { fromHost, to } from '../ops/index.js';
import type { DType } from '../tensor/dtype.js';
import { noGrad } from '../tensor/grad-mode.js';
import type { Rng } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { initKind, type InitLoraWeights, type ResolvedLoraConfig } from './config.js';
import { householderQr, svdLowRank, thinSvd } from './dense-linalg.js';
import { doraWeightNorm } from './dora.js';
import { PeftError } from './errors.js';
import type { LoraLinear } from './lora-linear.js';
import { overwriteTensor } from './tensor-copy.js';

/**
 * PEFT 0.21's initialisations that read the base weight W [out, in] (LoraLayer.pissa_init, olora_init, loftq_init,
 * orthogonal_init), on host float64 copies. Dtype rules as PEFT's: W is read as float32; A and B are computed in
 * float32, then (PEFT's _move_adapter_to_device_of_base_layer, then autocast_adapter_dtype) rounded through the base
 * weight's dtype and kept as float32; the new base weight is computed in float32 and stored in its own dtype.
 */

/** NF4 quantize-then-dequantize (bitsandbytes, blocksize 64, no double quantization), installed by src/quant. */
export type Nf4RoundTrip = (values: Float32Array) => Float32Array;
let nf4RoundTrip: Nf4RoundTrip | null = null;

/** src/quant installs its bitsandbytes-exact NF4 here on import (peft sits above quant in the layer order). */
export function registerLoftqQuantizer(fn: Nf4RoundTrip): void {
  nf4RoundTrip = fn;
}

/** Whether the init rewrites the base weight (and so reads it, which is asynchronous here). */
export function rewritesBase(init: InitLoraWeights): boolean {
  const kind = initKind(init);
  return kind === 'pissa' || kind === 'pissa_niter' || kind === 'olora' || kind === 'loftq';
}

interface Site {
  readonly path: string;
  readonly layer: LoraLinear;
}

/**
 * PEFT's orthogonal_init for every layer of adapter `name` (r must be even): X ~ N(0, 1) [r, r], Q from its QR, then
 * A = (N(0,1) [in, r/2] @ Q[0::2]).T / 10 and B = (N(0,1) [r/2, out]).T @ Q[1::2] / 10, so B A = 0 (the rows of Q
 * are orthonormal). Draws from `rng` (torch: its global generator) in that order, layer after layer.
 */
export function initOrthogonal(sites: readonly Site[], name: string, rng: Rng): void {
  for (const { path, layer } of sites) {
    if (!layer.hasAdapter(name)) continue;
    const r = layer.settingsOf(name)!.r;
    if (r % 2 !== 0) throw new PeftError(`Orthogonal initialization requires the LoRA rank to be even, got ${r} instead (at ${path}).`);
    const h = r / 2;
    const { q } = householderQr(normals(r * r, rng), r, r);
    const inF = layer.inFeatures;
    const outF = layer.outFeatures;
    const xa = normals(inF * h, rng);
    const xb = normals(h * outF, rng);
    const a = new Float32Array(r * inF);
    for (let c = 0; c < r; c++) {
      for (let j = 0; j < inF; j++) {
        let s = 0;
        for (let t = 0; t < h; t++) s += xa[j * h + t]! * q[2 * t * r + c]!;
        a[c * inF + j] = s / 10;
      }
    }
    const b = new Float32Array(outF * r);
    for (let i = 0; i < outF; i++) {
      for (let c = 0; c < r; c++) {
        let s = 0;
        for (let t = 0; t < h; t++) s += xb[t * outF + i]! * q[(2 * t + 1) * r + c]!;
        b[i * r + c] = s / 10;
      }
    }
    const dtype = layer.base_layer instanceof Linear ? layer.base_layer.weight.dtype : 'float32';
    setFactors(layer, name, a, b, dtype);
  }
}

/**
 * Runs the base-rewriting init of `config` (pissa, pissa_niter_N, olora, loftq) on every layer of adapter `name`,
 * in module order: A, B and the base weight as PEFT's update_layer leaves them. `rng` draws pissa_niter's Gaussian
 * sketch. DoRA magnitudes are recomputed from the new base afterwards (PEFT runs the variant's init after this).
 */
export async function initFromBase(sites: readonly Site[], name: string, config: ResolvedLoraConfig, rng: Rng): Promise<void> {
  const kind = initKind(config.initLoraWeights);
  for (const { path, layer } of sites) {
    if (!layer.hasAdapter(name)) continue;
    const base = layer.base_layer;
    if (!(base instanceof Linear)) {
      throw new PeftError(
        `initLoraWeights ${JSON.stringify(config.initLoraWeights)} rewrites the base weight of ${path}, whose ${base.constructor.name} is not a dense Linear; load the base model unquantized (float32, float16 or bfloat16) to initialise, and quantize the rewritten model afterwards (PEFT: "Please initialize PiSSA under float32, float16, or bfloat16").`,
      );
    }
    const { r, scaling } = layer.settingsOf(name)!;
    const m = layer.outFeatures;
    const n = layer.inFeatures;
    if (r > Math.min(m, n)) throw new PeftError(`initLoraWeights ${JSON.stringify(config.initLoraWeights)} needs r <= min(out, in) = ${Math.min(m, n)} at ${path}, got r ${r}.`);
    const w32 = await base.weight.data();
    const w = Float64Array.from(w32);
    let f: { a: Float32Array; b: Float32Array; weight: Float32Array };
    if (kind === 'pissa' || kind === 'pissa_niter') {
      const niter = kind === 'pissa' ? null : Number(String(config.initLoraWeights).split('_niter_')[1]);
      f = pissa(w, m, n, r, scaling, niter, rng);
    } else if (kind === 'olora') {
      f = olora(w, m, n, r, scaling);
    } else if (kind === 'loftq') {
      f = loftq(w32, m, n, r, config.loftqConfig?.loftqIter ?? 1);
    } else {
      throw new Error(`Internal error: initFromBase called for initLoraWeights ${JSON.stringify(config.initLoraWeights)}.`);
    }
    setFactors(layer, name, f.a, f.b, base.weight.dtype);
    noGrad(() => scope(() => overwriteTensor(base.weight, fromHost(f.weight, [m, n], 'float32', base.weight.device))));
    if (layer.settingsOf(name)!.useDora) {
      noGrad(() => scope(() => overwriteTensor(layer.lora_magnitude_vector.get(name)!.weight, doraWeightNorm(base.weight, layer.lora_A.get(name)!.weight, layer.lora_B.get(name)!.weight, scaling))));
    }
  }
}

/**
 * pissa_init: W = V S U^T; A = diag(sqrt(S_r / scaling)) U_r^T, B = V_r diag(sqrt(S_r / scaling)), from the full
 * SVD ("pissa") or from torch.svd_lowrank(W, r, niter) ("pissa_niter_N"); base W - scaling B A.
 */
function pissa(w: Float64Array, m: number, n: number, r: number, scaling: number, niter: number | null, rng: Rng) {
  // left(i, c), sigma(c), right(c, j): the top-r triplets.
  let left: (i: number, c: number) => number;
  let right: (c: number, j: number) => number;
  let sigma: Float64Array;
  if (niter === null) {
    const { u, s, vt } = thinSvd(w, m, n);
    const k = Math.min(m, n);
    left = (i, c) => u[i * k + c]!;
    right = (c, j) => vt[c * n + j]!;
    sigma = s;
  } else {
    const { u, s, v } = svdLowRank(w, m, n, r, niter, rng);
    const ku = u.length / m;
    const kv = v.length / n;
    left = (i, c) => u[i * ku + c]!;
    right = (c, j) => v[j * kv + c]!;
    sigma = s;
  }
  const root = Array.from({ length: r }, (_, c) => Math.sqrt(sigma[c]! / scaling));
  const a = new Float32Array(r * n);
  for (let c = 0; c < r; c++) for (let j = 0; j < n; j++) a[c * n + j] = root[c]! * right(c, j);
  const b = new Float32Array(m * r);
  for (let i = 0; i < m; i++) for (let c = 0; c < r; c++) b[i * r + c] = left(i, c) * root[c]!;
  return { a, b, weight: residual(w, a, b, m, n, r, scaling) };
}

/** olora_init: W = Q R (torch.linalg.qr); A = R[:r], B = Q[:, :r] (no 1 / scaling); base W - scaling B A. */
function olora(w: Float64Array, m: number, n: number, r: number, scaling: number) {
  const { q, r: rr } = householderQr(w, m, n);
  const k = Math.min(m, n);
  const a = new Float32Array(r * n);
  for (let c = 0; c < r; c++) for (let j = 0; j < n; j++) a[c * n + j] = rr[c * n + j]!;
  const b = new Float32Array(m * r);
  for (let i = 0; i < m; i++) for (let c = 0; c < r; c++) b[i * r + c] = q[i * k + c]!;
  return { a, b, weight: residual(w, a, b, m, n, r, scaling) };
}

/**
 * PEFT's loftq_init (utils/loftq_utils.py) with bitsandbytes NF4: res = W; loftq_iter times: Q = dequant(NF4(res)),
 * SVD of W - Q gives L = U_r sqrt(S_r), R = sqrt(S_r) Vh_r, res = W - L R. Then A = R, B = L and the base becomes
 * the last Q. As in PEFT, the factors ignore scaling: Q + B A approximates W (so Q + scaling B A does when
 * loraAlpha = r).
 */
function loftq(w32: Float32Array, m: number, n: number, r: number, iterations: number) {
  if (!nf4RoundTrip) throw new PeftError('initLoraWeights "loftq" needs loraforge\'s NF4 quantizer; import the package root (or src/quant/index.js) before creating the adapter.');
  const w = Float64Array.from(w32);
  let res: Float32Array = Float32Array.from(w32);
  let quantized: Float32Array = new Float32Array(0);
  let a = new Float32Array(0);
  let b = new Float32Array(0);
  for (let it = 0; it < iterations; it++) {
    quantized = nf4RoundTrip(res);
    const err = new Float64Array(m * n);
    for (let i = 0; i < err.length; i++) err[i] = Math.fround(w32[i]! - quantized[i]!);
    const { u, s, vt } = thinSvd(err, m, n);
    const k = Math.min(m, n);
    a = new Float32Array(r * n);
    b = new Float32Array(m * r);
    for (let c = 0; c < r; c++) {
      const root = Math.sqrt(s[c]!);
      for (let j = 0; j < n; j++) a[c * n + j] = root * vt[c * n + j]!;
      for (let i = 0; i < m; i++) b[i * r + c] = u[i * k + c]! * root;
    }
    res = residual(w, a, b, m, n, r, 1);
  }
  return { a, b, weight: quantized };
}

/** W - scaling * B A in float32 (from float32 A and B, as PEFT's float32 arithmetic). */
function residual(w: Float64Array, a: Float32Array, b: Float32Array, m: number, n: number, r: number, scaling: number): Float32Array {
  const out = new Float32Array(m * n);
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let c = 0; c < r; c++) {
      const bv = b[i * r + c]!;
      for (let j = 0; j < n; j++) row[j]! += bv * a[c * n + j]!;
    }
    for (let j = 0; j < n; j++) out[i * n + j] = w[i * n + j]! - scaling * row[j]!;
  }
  return out;
}

function normals(count: number, rng: Rng): Float64Array {
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = rng.normal();
  return out;
}

/** Writes A [r, in] and B [out, r] into the adapter's float32 tensors, rounded through the base dtype first. */
function setFactors(layer: LoraLinear, name: string, a: Float32Array, b: Float32Array, baseDtype: DType): void {
  noGrad(() =>
    scope(() => {
      for (const [target, values] of [
        [layer.lora_A.get(name)!.weight, a],
        [layer.lora_B.get(name)!.weight, b],
      ] as [Tensor, Float32Array][]) {
        const t = fromHost(values, target.shape, 'float32', target.device);
        overwriteTensor(target, baseDtype === 'float32' ? t : to(to(t, { dtype: baseDtype }), { dtype: 'float32' }));
      }
    }),
  );
}
