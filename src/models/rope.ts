/**
 * RoPE frequencies and cos/sin tables, as transformers 5 computes them (modeling_rope_utils.py, the
 * *RotaryEmbedding forward of its models): every rope type's inverse frequencies, the attention scaling that
 * multiplies cos and sin, and the forward-time switches of `dynamic_rope_update`. Where torch computes in
 * float32 (tensor ops, with Python scalars cast to float32) each step here is rounded with Math.fround in the same
 * order; where transformers computes with Python floats (float64) so does this file. pow, cos and sin are
 * evaluated in float64 and rounded once, where torch's float32 kernels may differ in the last bit.
 */

const f = Math.fround;

export type RopeType = 'default' | 'linear' | 'llama3' | 'dynamic' | 'yarn' | 'longrope';
export const ROPE_TYPES: readonly RopeType[] = ['default', 'linear', 'llama3', 'dynamic', 'yarn', 'longrope'];

interface RopeBase {
  /** rope_theta: the base of the frequencies. */
  readonly theta: number;
}
export interface DefaultRope extends RopeBase {
  readonly type: 'default';
}
/** Frequencies divided by factor (position interpolation). */
export interface LinearRope extends RopeBase {
  readonly type: 'linear';
  readonly factor: number;
}
/** Llama 3.1: long wavelengths divided by factor, short ones kept, a smooth blend between. */
export interface Llama3Rope extends RopeBase {
  readonly type: 'llama3';
  readonly factor: number;
  readonly lowFreqFactor: number;
  readonly highFreqFactor: number;
  readonly originalMaxPositionEmbeddings: number;
}
/** Dynamic NTK: the base grows with the forward's length once it passes maxPositionEmbeddings. */
export interface DynamicRope extends RopeBase {
  readonly type: 'dynamic';
  readonly factor: number;
  readonly maxPositionEmbeddings: number;
}
/** YaRN: interpolated and extrapolated frequencies blended over a ramp of dimensions. */
export interface YarnRope extends RopeBase {
  readonly type: 'yarn';
  readonly factor: number;
  readonly originalMaxPositionEmbeddings: number;
  readonly betaFast: number;
  readonly betaSlow: number;
  /** Round the ramp's ends to whole dimensions (transformers' default true). */
  readonly truncate: boolean;
  /** attention_factor, or the value transformers derives from factor, mscale and mscale_all_dim. */
  readonly attentionFactor: number;
}
/** LongRoPE (Phi-3): per-frequency divisors, short_factor up to originalMaxPositionEmbeddings, long_factor past it. */
export interface LongRope extends RopeBase {
  readonly type: 'longrope';
  readonly shortFactor: readonly number[];
  readonly longFactor: readonly number[];
  readonly originalMaxPositionEmbeddings: number;
  /** attention_factor, or sqrt(1 + ln(factor) / ln(originalMaxPositionEmbeddings)) (1 when factor <= 1). */
  readonly attentionFactor: number;
}
/** One rope_parameters entry, validated, in camelCase (parseRopeSpec). */
export type RopeSpec = DefaultRope | LinearRope | Llama3Rope | DynamicRope | YarnRope | LongRope;

/** What parseRopeSpec needs from the rest of the config. */
export interface RopeSpecContext {
  /** max_position_embeddings. */
  readonly maxPositionEmbeddings: number;
  /**
   * A top-level original_max_position_embeddings (Phi-3 keeps it outside rope_parameters). As transformers'
   * standardize_rope_params does for llama3, yarn and longrope, it takes precedence over the one in the
   * parameters, and max_position_embeddings stands in when neither is given.
   */
  readonly originalMaxPositionEmbeddings?: number;
  /** Rotated dimensions per head: floor(head_dim * partial_rotary_factor). */
  readonly rotaryDim: number;
  /** Where the parameters are, for messages (e.g. "config.json rope_parameters"). */
  readonly where: string;
}

export interface RopeFrequencies {
  /** rotaryDim / 2 inverse frequencies, float32. */
  readonly invFreq: Float32Array;
  /** Multiplies cos and sin (yarn and longrope; 1 for the others). */
  readonly attentionScaling: number;
}

/**
 * Validates one rope_parameters entry (transformers 5 keys: rope_type or its old name type, rope_theta, factor,
 * ...; keys a type does not use are ignored, as transformers only warns about them). rope_theta is required:
 * merge a 4.x top-level rope_theta in first. Throws one sentence naming the field and ctx.where on a missing or
 * invalid field or an unknown rope type.
 */
export function parseRopeSpec(params: Record<string, unknown>, ctx: RopeSpecContext): RopeSpec {
  const { where } = ctx;
  const rawType = params['rope_type'] ?? params['type'] ?? 'default';
  if (typeof rawType !== 'string' || !(ROPE_TYPES as readonly string[]).includes(rawType)) {
    throw new Error(`${where}: rope type ${JSON.stringify(rawType)} is not supported; supported types are ${ROPE_TYPES.join(', ')}.`);
  }
  const type = rawType as RopeType;
  const has = (key: string) => params[key] !== undefined && params[key] !== null;
  const positive = (key: string): number => {
    const value = params[key];
    if (value === undefined || value === null) throw new Error(`${where}: rope type "${type}" needs "${key}".`);
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new Error(`${where}: "${key}" must be a positive number, got ${JSON.stringify(value)}.`);
    }
    return value;
  };
  const optional = (key: string): number | null => {
    if (!has(key)) return null;
    const value = params[key];
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new Error(`${where}: "${key}" must be a number, got ${JSON.stringify(value)}.`);
    return value;
  };
  const maxPositions = (key: string, value: unknown): number => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) throw new Error(`${where}: "${key}" must be a positive integer, got ${JSON.stringify(value)}.`);
    return value;
  };
  const originalMax = (): number => {
    const key = 'original_max_position_embeddings';
    if (ctx.originalMaxPositionEmbeddings !== undefined) return maxPositions(key, ctx.originalMaxPositionEmbeddings);
    return has(key) ? maxPositions(key, params[key]) : maxPositions('max_position_embeddings', ctx.maxPositionEmbeddings);
  };
  const theta = positive('rope_theta');
  switch (type) {
    case 'default':
      return { type, theta };
    case 'linear':
      return { type, theta, factor: positive('factor') };
    case 'dynamic':
      return { type, theta, factor: positive('factor'), maxPositionEmbeddings: maxPositions('max_position_embeddings', ctx.maxPositionEmbeddings) };
    case 'llama3': {
      const lowFreqFactor = positive('low_freq_factor');
      const highFreqFactor = positive('high_freq_factor');
      if (!(highFreqFactor > lowFreqFactor)) {
        throw new Error(`${where}: "high_freq_factor" (${highFreqFactor}) must be greater than "low_freq_factor" (${lowFreqFactor}).`);
      }
      return { type, theta, factor: positive('factor'), lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: originalMax() };
    }
    case 'yarn': {
      const original = originalMax();
      // transformers reads factor with ["factor"] (missing is an error) but derives it when it is null.
      const factor = params['factor'] === null ? ctx.maxPositionEmbeddings / original : positive('factor');
      const mscale = optional('mscale');
      const mscaleAllDim = optional('mscale_all_dim');
      const given = has('attention_factor') ? positive('attention_factor') : null;
      const attentionFactor = given ?? (mscale && mscaleAllDim ? yarnMscale(factor, mscale) / yarnMscale(factor, mscaleAllDim) : yarnMscale(factor, 1));
      // rope_parameters.get("truncate", True): absent is true, null is Python's falsy None.
      const truncate = params['truncate'] === undefined ? true : (params['truncate'] ?? false);
      if (typeof truncate !== 'boolean') throw new Error(`${where}: "truncate" must be true or false, got ${JSON.stringify(truncate)}.`);
      // Python's `or`: a missing, null or 0 beta takes the default.
      return { type, theta, factor, originalMaxPositionEmbeddings: original, betaFast: optional('beta_fast') || 32, betaSlow: optional('beta_slow') || 1, truncate, attentionFactor };
    }
    case 'longrope': {
      const original = originalMax();
      const half = ctx.rotaryDim / 2;
      const list = (key: string): number[] => {
        const v = params[key];
        if (v === undefined || v === null) throw new Error(`${where}: rope type "longrope" needs "${key}".`);
        if (!Array.isArray(v) || v.length !== half || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)) {
          throw new Error(`${where}: "${key}" must list ${half} positive numbers (one per rotary frequency), got ${Array.isArray(v) ? `${v.length} entries` : JSON.stringify(v)}.`);
        }
        return v as number[];
      };
      const shortFactor = list('short_factor');
      const longFactor = list('long_factor');
      const factor = has('factor') ? positive('factor') : ctx.maxPositionEmbeddings / original;
      const given = has('attention_factor') ? positive('attention_factor') : null;
      const attentionFactor = given ?? (factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(original)));
      return { type, theta, shortFactor, longFactor, originalMaxPositionEmbeddings: original, attentionFactor };
    }
  }
}

/** transformers' get_mscale (yarn). */
function yarnMscale(scale: number, mscale: number): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

/**
 * The inverse frequencies (rotaryDim / 2 of them) and the cos/sin multiplier for a forward whose largest
 * position id is maxPosition. dynamic and longrope depend on seq_len = maxPosition + 1 as transformers'
 * dynamic_rope_update does on a model's first forward: dynamic recomputes its base when seq_len exceeds
 * maxPositionEmbeddings, longrope takes long_factor when seq_len exceeds originalMaxPositionEmbeddings and
 * short_factor otherwise. (transformers also keeps dynamic's grown frequencies for later, shorter forwards until
 * one falls below max_position_embeddings; here each forward depends on its own positions only.)
 */
export function ropeFrequencies(spec: RopeSpec, rotaryDim: number, maxPosition: number): RopeFrequencies {
  if (!Number.isInteger(rotaryDim) || rotaryDim <= 0 || rotaryDim % 2 !== 0) throw new Error(`RoPE needs a positive even rotary dimension, got ${rotaryDim}.`);
  const seqLen = maxPosition + 1;
  switch (spec.type) {
    case 'default':
      return { invFreq: defaultInvFreq(spec.theta, rotaryDim), attentionScaling: 1 };
    case 'linear': {
      const factor = f(spec.factor);
      return { invFreq: defaultInvFreq(spec.theta, rotaryDim).map((v) => v / factor), attentionScaling: 1 };
    }
    case 'llama3':
      return { invFreq: llama3InvFreq(spec, rotaryDim), attentionScaling: 1 };
    case 'dynamic':
      return { invFreq: dynamicInvFreq(spec, rotaryDim, seqLen), attentionScaling: 1 };
    case 'yarn':
      return { invFreq: yarnInvFreq(spec, rotaryDim), attentionScaling: spec.attentionFactor };
    case 'longrope': {
      const factors = seqLen > spec.originalMaxPositionEmbeddings ? spec.longFactor : spec.shortFactor;
      if (factors.length !== rotaryDim / 2) throw new Error(`longrope lists ${factors.length} factors for ${rotaryDim / 2} rotary frequencies.`);
      // 1 / (ext_factors * base ** (2i / dim)), all float32.
      const pos = powers(spec.theta, rotaryDim);
      return { invFreq: pos.map((p, i) => 1 / f(f(factors[i]!) * p)), attentionScaling: spec.attentionFactor };
    }
  }
}

/** base ** (arange(0, dim, 2) / dim) in float32: the exponent rounded, base cast to float32, the power rounded. */
function powers(base: number, dim: number): Float32Array {
  const out = new Float32Array(dim / 2);
  const b = f(base);
  for (let i = 0; i < out.length; i++) out[i] = b ** f((2 * i) / dim);
  return out;
}

/** 1 / (base ** (arange(0, dim, 2) / dim)) in float32 (Float32Array.map rounds each result). */
function defaultInvFreq(base: number, dim: number): Float32Array {
  return powers(base, dim).map((p) => 1 / p);
}

function llama3InvFreq(spec: Llama3Rope, dim: number): Float32Array {
  const inv = defaultInvFreq(spec.theta, dim);
  const { lowFreqFactor: low, highFreqFactor: high, originalMaxPositionEmbeddings: old } = spec;
  // Python floats compared with float32 tensors are cast to float32; `c / tensor` is tensor.reciprocal() * c.
  const factor = f(spec.factor);
  const lowWavelen = f(old / low);
  const highWavelen = f(old / high);
  const twoPi = f(2 * Math.PI);
  const oldF = f(old);
  const lowF = f(low);
  const span = f(high - low);
  return inv.map((freq) => {
    const wavelen = f(f(1 / freq) * twoPi);
    const scaled = wavelen > lowWavelen ? f(freq / factor) : freq;
    if (wavelen < highWavelen || wavelen > lowWavelen) return scaled;
    const smooth = f(f(f(f(1 / wavelen) * oldF) - lowF) / span);
    return f(f(f(f(1 - smooth) * scaled) / factor) + f(smooth * scaled));
  });
}

function dynamicInvFreq(spec: DynamicRope, dim: number, seqLen: number): Float32Array {
  const { factor, maxPositionEmbeddings: max } = spec;
  const exponent = dim / (dim - 2);
  if (seqLen <= max) {
    // The frequencies made at initialisation, with seq_len = max_position_embeddings, in Python floats.
    return defaultInvFreq(spec.theta * ((factor * max) / max - (factor - 1)) ** exponent, dim);
  }
  // dynamic_rope_update passes seq_len as a tensor, so transformers computes the new base in float32.
  const ratio = f(f(f(f(factor) * f(seqLen)) / max) - f(factor - 1));
  const base = f(f(spec.theta) * f(ratio ** exponent));
  return powers(base, dim).map((p) => 1 / p);
}

function yarnInvFreq(spec: YarnRope, dim: number): Float32Array {
  const { theta, betaFast, betaSlow, truncate, originalMaxPositionEmbeddings: original } = spec;
  const factor = f(spec.factor);
  const pos = powers(theta, dim);
  // find_correction_range, in Python floats.
  const correctionDim = (rotations: number) => (dim * Math.log(original / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
  let low = correctionDim(betaFast);
  let high = correctionDim(betaSlow);
  if (truncate) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;
  const lowF = f(low);
  const span = f(high - low);
  return pos.map((p, i) => {
    const ramp = Math.min(Math.max(f(f(i - lowF) / span), 0), 1);
    const extrapolation = f(1 - ramp);
    const interpolated = f(1 / f(factor * p));
    const extrapolated = f(1 / p);
    return f(f(interpolated * f(1 - extrapolation)) + f(extrapolated * extrapolation));
  });
}

/**
 * cos/sin tables [positions.length, rotaryDim] in the rotate-half layout (the rotaryDim / 2 frequencies twice),
 * as transformers' rotary forward computes them in float32: angle = position * invFreq, then cos and sin, each
 * multiplied by attentionScaling.
 */
export function ropeTables(freqs: RopeFrequencies, positions: ArrayLike<number>): { cos: Float32Array; sin: Float32Array } {
  const { invFreq, attentionScaling } = freqs;
  const half = invFreq.length;
  const dim = half * 2;
  const scale = f(attentionScaling);
  const cos = new Float32Array(positions.length * dim);
  const sin = new Float32Array(positions.length * dim);
  for (let p = 0; p < positions.length; p++) {
    const pos = f(positions[p]!);
    for (let i = 0; i < half; i++) {
      const angle = f(pos * invFreq[i]!);
      let c = f(Math.cos(angle));
      let s = f(Math.sin(angle));
      if (scale !== 1) {
        c = f(c * scale);
        s = f(s * scale);
      }
      cos[p * dim + i] = c;
      cos[p * dim + i + half] = c;
      sin[p * dim + i] = s;
      sin[p * dim + i + half] = s;
    }
  }
  return { cos, sin };
}
