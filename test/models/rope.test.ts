/**
 * RoPE frequencies, tables and the partial-rotary kernel. Every rope type is checked against a float64 evaluation
 * of transformers' formulas written out here (not the float32 code under test); tolerances come from what float32
 * does to those formulas (see FREQ_TOL). The kernel tests run on the device LORAFORGE_TEST_DEVICE selects.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getBackend } from '../../src/backend/registry.js';
import { kernels } from '../../src/ops/composed-kernels.js';
import { parseRopeSpec, ropeFrequencies, ropeTables, type RopeSpec, type RopeSpecContext } from '../../src/models/rope.js';
import * as ops from '../../src/ops/index.js';
import type { DType } from '../../src/tensor/dtype.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';
import { assertClose, seededValues } from '../helpers/numeric.js';

await prepareTestDevice();

/**
 * Relative tolerance of float32 inverse frequencies against float64: the exponent 2i/d is rounded to float32
 * (relative error up to 2^-24, which theta^e turns into ln(theta) * 2^-24 relative, about 8e-7 at theta = 5e5),
 * plus at most ten float32 roundings of the steps after it (about 6e-7).
 */
const FREQ_TOL = 2e-6;

function ctx(over: Partial<RopeSpecContext> = {}): RopeSpecContext {
  return { maxPositionEmbeddings: 4096, rotaryDim: 64, where: 'config.json rope_parameters', ...over };
}

/** theta^(-2i/d), i < d/2, in float64. */
function baseFreqs(theta: number, d: number): number[] {
  return Array.from({ length: d / 2 }, (_, i) => theta ** (-(2 * i) / d));
}

function assertFreqs(got: Float32Array, want: number[], what: string, tol = FREQ_TOL): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i]! - want[i]!) <= tol * Math.abs(want[i]!), `${what}[${i}]: ${got[i]} vs float64 ${want[i]}`);
  }
}

test('default and linear: theta^(-2i/d), divided by factor', () => {
  for (const [theta, d] of [[10000, 64], [500000, 128], [1e6, 96]] as const) {
    const def = ropeFrequencies(parseRopeSpec({ rope_type: 'default', rope_theta: theta }, ctx({ rotaryDim: d })), d, 10);
    assertFreqs(def.invFreq, baseFreqs(theta, d), `default theta=${theta} d=${d}`);
    assert.equal(def.attentionScaling, 1);
    const lin = ropeFrequencies(parseRopeSpec({ rope_type: 'linear', rope_theta: theta, factor: 2.5 }, ctx({ rotaryDim: d })), d, 10);
    assertFreqs(lin.invFreq, baseFreqs(theta, d).map((v) => v / 2.5), `linear theta=${theta} d=${d}`);
  }
  // a 4.x rope_scaling entry names its type "type"; no type at all is the default.
  assert.equal(parseRopeSpec({ type: 'linear', factor: 2, rope_theta: 10000 }, ctx()).type, 'linear');
  assert.equal(parseRopeSpec({ rope_theta: 10000 }, ctx()).type, 'default');
});

test('llama3: long wavelengths divided by factor, short ones kept, the band between blended', () => {
  const p = { rope_type: 'llama3', rope_theta: 500000, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
  const spec = parseRopeSpec(p, ctx({ maxPositionEmbeddings: 131072, rotaryDim: 128 }));
  const want = baseFreqs(500000, 128).map((freq) => {
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < 8192 / 4) return freq;
    if (wavelen > 8192 / 1) return freq / 8;
    const smooth = (8192 / wavelen - 1) / (4 - 1);
    return ((1 - smooth) * freq) / 8 + smooth * freq;
  });
  const got = ropeFrequencies(spec, 128, 0).invFreq;
  assertFreqs(got, want, 'llama3');
  // all three regimes occur at these settings
  assert.ok(want.some((v, i) => v === baseFreqs(500000, 128)[i]) && want.some((v, i) => v === baseFreqs(500000, 128)[i]! / 8));
  assert.ok(want.some((v, i) => v !== baseFreqs(500000, 128)[i] && v !== baseFreqs(500000, 128)[i]! / 8));
});

test('dynamic: default frequencies up to max_position_embeddings, a grown base from one position past it', () => {
  const max = 2048;
  const d = 64;
  const spec = parseRopeSpec({ rope_type: 'dynamic', rope_theta: 10000, factor: 2 }, ctx({ maxPositionEmbeddings: max, rotaryDim: d }));
  const plain = ropeFrequencies(parseRopeSpec({ rope_theta: 10000 }, ctx({ rotaryDim: d })), d, 0).invFreq;
  // largest position id max - 1: seq_len = max, no growth (bit-identical to default)
  assert.deepEqual(ropeFrequencies(spec, d, max - 1).invFreq, plain);
  for (const maxPosition of [max, 3 * max + 17]) {
    const seqLen = maxPosition + 1;
    const base = 10000 * ((2 * seqLen) / max - (2 - 1)) ** (d / (d - 2));
    const got = ropeFrequencies(spec, d, maxPosition);
    assertFreqs(got.invFreq, baseFreqs(base, d), `dynamic seq_len ${seqLen}`);
    assert.equal(got.attentionScaling, 1);
    assert.ok(got.invFreq[d / 2 - 1]! < plain[d / 2 - 1]!, 'a longer context lowers the frequencies');
  }
});

/** YaRN in float64, straight from the paper's formulas as transformers writes them. */
function yarnRef(theta: number, d: number, factor: number, original: number, betaFast: number, betaSlow: number, truncate: boolean): number[] {
  const corr = (rot: number) => (d * Math.log(original / (rot * 2 * Math.PI))) / (2 * Math.log(theta));
  let low = corr(betaFast);
  let high = corr(betaSlow);
  if (truncate) [low, high] = [Math.floor(low), Math.ceil(high)];
  low = Math.max(low, 0);
  high = Math.min(high, d - 1);
  if (low === high) high += 0.001;
  return baseFreqs(theta, d).map((freq, i) => {
    const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
    const extrapolationFactor = 1 - ramp;
    return (freq / factor) * (1 - extrapolationFactor) + freq * extrapolationFactor;
  });
}

test('yarn: ramp between interpolation and extrapolation, with and without truncate; attention factor from factor and mscale', () => {
  const d = 128;
  const base = { rope_type: 'yarn', rope_theta: 10000, factor: 4, original_max_position_embeddings: 4096 };
  const c = ctx({ maxPositionEmbeddings: 16384, rotaryDim: d });
  const truncated = ropeFrequencies(parseRopeSpec(base, c), d, 100);
  const exact = ropeFrequencies(parseRopeSpec({ ...base, truncate: false }, c), d, 100);
  assertFreqs(truncated.invFreq, yarnRef(10000, d, 4, 4096, 32, 1, true), 'yarn truncate');
  assertFreqs(exact.invFreq, yarnRef(10000, d, 4, 4096, 32, 1, false), 'yarn truncate=false');
  assert.notDeepEqual(truncated.invFreq, exact.invFreq);
  // transformers tests `if truncate:`, so a null truncate does not truncate
  assert.deepEqual(ropeFrequencies(parseRopeSpec({ ...base, truncate: null }, c), d, 100).invFreq, exact.invFreq);
  assert.equal(truncated.attentionScaling, 0.1 * Math.log(4) + 1);
  // beta_fast / beta_slow; mscale with mscale_all_dim (DeepSeek-V3); an explicit attention_factor; factor null.
  const custom = parseRopeSpec({ ...base, beta_fast: 16, beta_slow: 2 }, c);
  assertFreqs(ropeFrequencies(custom, d, 0).invFreq, yarnRef(10000, d, 4, 4096, 16, 2, true), 'yarn betas');
  const ds = parseRopeSpec({ ...base, factor: 40, mscale: 1, mscale_all_dim: 0.707 }, c);
  assert.ok(Math.abs(ropeFrequencies(ds, d, 0).attentionScaling - (0.1 * Math.log(40) + 1) / (0.1 * 0.707 * Math.log(40) + 1)) < 1e-15);
  assert.equal(ropeFrequencies(parseRopeSpec({ ...base, attention_factor: 1.25 }, c), d, 0).attentionScaling, 1.25);
  const derived = parseRopeSpec({ ...base, factor: null }, c);
  assert.equal(derived.type === 'yarn' && derived.factor, 16384 / 4096);
  // the tables carry the attention factor
  const tables = ropeTables(truncated, [0, 1]);
  assert.ok(Math.abs(tables.cos[0]! - truncated.attentionScaling) < 1e-7);
});

test('longrope: short_factor up to original_max_position_embeddings, long_factor past it, sqrt attention factor', () => {
  const d = 32;
  const half = d / 2;
  const shortFactor = Array.from({ length: half }, (_, i) => 1 + 0.05 * i);
  const longFactor = Array.from({ length: half }, (_, i) => 1.2 + 0.4 * i);
  // Phi-3 keeps original_max_position_embeddings at the top level of config.json.
  const c = ctx({ maxPositionEmbeddings: 131072, originalMaxPositionEmbeddings: 4096, rotaryDim: d });
  const spec = parseRopeSpec({ rope_type: 'longrope', rope_theta: 10000, short_factor: shortFactor, long_factor: longFactor }, c);
  const want = (factors: number[]) => baseFreqs(10000, d).map((freq, i) => freq / factors[i]!);
  const short = ropeFrequencies(spec, d, 4095); // seq_len 4096: not past the original length
  const long = ropeFrequencies(spec, d, 4096);
  assertFreqs(short.invFreq, want(shortFactor), 'longrope short');
  assertFreqs(long.invFreq, want(longFactor), 'longrope long');
  const attention = Math.sqrt(1 + Math.log(131072 / 4096) / Math.log(4096));
  assert.ok(Math.abs(short.attentionScaling - attention) < 1e-15 && long.attentionScaling === short.attentionScaling);
  // an explicit factor sets the attention factor; factor <= 1 gives 1
  const withFactor = parseRopeSpec({ rope_type: 'longrope', rope_theta: 10000, short_factor: shortFactor, long_factor: longFactor, factor: 16 }, c);
  assert.ok(Math.abs(ropeFrequencies(withFactor, d, 0).attentionScaling - Math.sqrt(1 + Math.log(16) / Math.log(4096))) < 1e-15);
  const noGrowth = parseRopeSpec({ rope_type: 'longrope', rope_theta: 10000, short_factor: shortFactor, long_factor: longFactor }, ctx({ maxPositionEmbeddings: 4096, rotaryDim: d }));
  assert.equal(ropeFrequencies(noGrowth, d, 0).attentionScaling, 1);
});

test('original_max_position_embeddings: the top-level value wins, then rope_parameters, then max_position_embeddings', () => {
  const p = { rope_type: 'llama3', rope_theta: 500000, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
  const orig = (spec: RopeSpec) => (spec.type === 'llama3' ? spec.originalMaxPositionEmbeddings : NaN);
  assert.equal(orig(parseRopeSpec(p, ctx({ maxPositionEmbeddings: 131072 }))), 8192);
  assert.equal(orig(parseRopeSpec(p, ctx({ maxPositionEmbeddings: 131072, originalMaxPositionEmbeddings: 4096 }))), 4096);
  const { original_max_position_embeddings: _, ...without } = p;
  assert.equal(orig(parseRopeSpec(without, ctx({ maxPositionEmbeddings: 131072 }))), 131072);
});

test('cos/sin tables: [positions, rotaryDim], the frequencies twice, times the attention scaling', () => {
  const freqs = { invFreq: Float32Array.from([1, 0.1, 0.01]), attentionScaling: 1.5 };
  const positions = [0, 3, 1000, 7];
  const { cos, sin } = ropeTables(freqs, positions);
  assert.equal(cos.length, positions.length * 6);
  for (let p = 0; p < positions.length; p++) {
    for (let j = 0; j < 6; j++) {
      const angle = positions[p]! * freqs.invFreq[j % 3]!;
      // the angle is rounded to float32 (error up to |angle| 2^-24), then cos/sin and the product rounded
      const tol = 1.5 * (Math.abs(angle) * 2 ** -24 + 2 ** -23);
      assert.ok(Math.abs(cos[p * 6 + j]! - 1.5 * Math.cos(angle)) <= tol, `cos[${p}, ${j}]`);
      assert.ok(Math.abs(sin[p * 6 + j]! - 1.5 * Math.sin(angle)) <= tol, `sin[${p}, ${j}]`);
    }
  }
});

test('parseRopeSpec refuses a bad entry in one sentence naming the field and where it is', () => {
  const where = 'models/x/config.json rope_parameters';
  const cases: [Record<string, unknown>, string, Partial<RopeSpecContext>?][] = [
    [{ rope_type: 'mrope', rope_theta: 10000 }, '"mrope"'],
    [{ rope_type: 'linear' }, 'rope_theta'],
    [{ rope_type: 'linear', rope_theta: 10000 }, 'factor'],
    [{ rope_type: 'dynamic', rope_theta: 10000, factor: 'two' }, 'factor'],
    [{ rope_type: 'linear', rope_theta: -5, factor: 2 }, 'rope_theta'],
    [{ rope_type: 'llama3', rope_theta: 1e4, factor: 8, low_freq_factor: 4, high_freq_factor: 1 }, 'high_freq_factor'],
    [{ rope_type: 'llama3', rope_theta: 1e4, factor: 8, high_freq_factor: 4 }, 'low_freq_factor'],
    [{ rope_type: 'yarn', rope_theta: 1e4, original_max_position_embeddings: 4096 }, 'factor'],
    [{ rope_type: 'yarn', rope_theta: 1e4, factor: 4, truncate: 'yes' }, 'truncate'],
    [{ rope_type: 'yarn', rope_theta: 1e4, factor: 4, beta_fast: 'fast' }, 'beta_fast'],
    [{ rope_type: 'longrope', rope_theta: 1e4, short_factor: [1, 2], long_factor: [1, 2] }, 'short_factor', { rotaryDim: 8 }],
    [{ rope_type: 'longrope', rope_theta: 1e4, short_factor: [1, 1, 1, 1] }, 'long_factor', { rotaryDim: 8 }],
    [{ rope_type: 'yarn', rope_theta: 1e4, factor: 4, original_max_position_embeddings: 0 }, 'original_max_position_embeddings'],
  ];
  for (const [params, field, over] of cases) {
    assert.throws(
      () => parseRopeSpec(params, ctx({ where, ...over })),
      (e: Error) => e.message.startsWith(`${where}: `) && e.message.includes(field) && /\.$/.test(e.message) && e.message.split('. ').length === 1,
      `${JSON.stringify(params)} should be refused naming ${field}`,
    );
  }
  assert.throws(() => ropeFrequencies(parseRopeSpec({ rope_theta: 1e4 }, ctx()), 7, 0), /even/);
});

const dev = TEST_DEVICE;

/** Partial rotary in float64: rotate-half within the first R of each head, the rest copied; transposed when inverse. */
function ropeRef(x: Float32Array, cos: Float32Array, sin: Float32Array, B: number, T: number, H: number, D: number, R: number, perRow: boolean, inverse: boolean): Float32Array {
  const out = Float32Array.from(x);
  const h = R / 2;
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let hd = 0; hd < H; hd++) {
    const o = ((b * T + t) * H + hd) * D;
    const tb = ((perRow ? b * T : 0) + t) * R;
    for (let i = 0; i < h; i++) {
      const x1 = x[o + i]!, x2 = x[o + i + h]!;
      const [c1, c2, s1, s2] = [cos[tb + i]!, cos[tb + i + h]!, sin[tb + i]!, sin[tb + i + h]!];
      out[o + i] = inverse ? x1 * c1 + x2 * s2 : x1 * c1 - x2 * s1;
      out[o + i + h] = inverse ? x2 * c2 - x1 * s1 : x2 * c2 + x1 * s2;
    }
  }
  return out;
}

for (const [dtype, tol] of [['float32', 1e-6], ['bfloat16', 1e-2]] as [DType, number][]) {
  test(`${dtype}: partial rotary rotates the first rotaryDim of each head and passes the rest through, forward and inverse`, async () => {
    const B = 2, T = 3, H = 2, D = 10;
    for (const R of [4, 10]) {
      for (const perRow of [false, true]) {
        const rows = perRow ? B * T : T;
        const angles = seededValues(rows * R, 31 + R, 3);
        const cos = angles.map(Math.cos), sin = angles.map(Math.sin);
        const tableShape = perRow ? [B, T, R] : [T, R];
        const cosT = ops.tensor(cos, tableShape, { device: dev }), sinT = ops.tensor(sin, tableShape, { device: dev });
        const xs = await ops.tensor(seededValues(B * T * H * D, 41), [B * T * H * D], { dtype }).data();
        const x = ops.tensor(xs, [B, T, H, D], { device: dev, dtype }).requiresGrad_();
        const y = ops.rope(x, cosT, sinT);
        const want = ropeRef(xs, cos, sin, B, T, H, D, R, perRow, false);
        const got = await y.data();
        assertClose(got, want, tol, `rope R=${R} perRow=${perRow}`);
        for (let r = 0; r < B * T * H; r++) for (let j = R; j < D; j++) assert.equal(got[r * D + j], xs[r * D + j], 'passed-through elements are copied exactly');
        // backward is the inverse rotation of the incoming gradient
        const gs = await ops.tensor(seededValues(B * T * H * D, 43), [B * T * H * D], { dtype }).data();
        await ops.sum(ops.mul(y, ops.tensor(gs, [B, T, H, D], { device: dev, dtype }))).backward();
        assertClose(await x.grad!.data(), ropeRef(gs, cos, sin, B, T, H, D, R, perRow, true), tol, `rope inverse R=${R} perRow=${perRow}`);
        // the backend's inverse in place (out = x), or ops/' composition of it where the backend has no rope kernel
        const g = ops.tensor(gs, [B * T * H * D], { device: dev, dtype });
        kernels(getBackend(dev)).rope(g.buffer, cosT.buffer, sinT.buffer, perRow ? T * R : 0, B, T, H, D, g.buffer, true, R);
        assertClose(await g.data(), ropeRef(gs, cos, sin, B, T, H, D, R, perRow, true), tol, `in-place inverse R=${R} perRow=${perRow}`);
      }
    }
  });
}

test('rope refuses tables that are odd, wider than the head or of another length', () => {
  const x = ops.tensor(new Float32Array(2 * 3 * 4), [1, 2, 3, 4], { device: dev });
  for (const shape of [[2, 3], [2, 6], [3, 4], [2, 2, 4]]) {
    const c = ops.tensor(new Float32Array(shape.reduce((p, v) => p * v, 1)), shape, { device: dev });
    assert.throws(() => ops.rope(x, c, c), /RoPE tables/);
  }
  const c = ops.tensor(new Float32Array(2 * 2), [2, 2], { device: dev });
  const s = ops.tensor(new Float32Array(2 * 4), [2, 4], { device: dev });
  assert.throws(() => ops.rope(x, c, s), /RoPE tables/);
});
