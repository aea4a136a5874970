// PEFT 0.21's base-rewriting LoRA initialisations (pissa, pissa_niter_N, olora, loftq) and orthogonal, against the
// reference PEFT wrote (test/fixtures/tiny-llama-peftx-extra-ref.safetensors, -pissa/, -olora/), and the cases of
// PEFT's tests/test_initialization.py (TestLoraInitialization) and tests/test_gpu_examples.py (TestLoftQ) for them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Linear } from '../../src/nn/layers.js';
import { mulScalar } from '../../src/ops/index.js';
import { getPeftModel, getPeftModelAsync, parseAdapterConfig, PeftModel, type LoraConfig, type LoraLinear } from '../../src/peft/index.js';
import { householderQr, thinSvd } from '../../src/peft/dense-linalg.js';
import { overwriteTensor } from '../../src/peft/tensor-copy.js';
import { dequantizeNf4, quantizeNf4 } from '../../src/quant/index.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import { bf16ArrayToF32, f32ToBf16Bits } from '../../src/tensor/dtype.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { buildCausalLM } from '../../src/models/build.js';
import { loadConfig } from '../../src/models/config.js';
import { openCheckpoint } from '../../src/io/checkpoint.js';
import { TEST_DEVICE } from '../helpers/device.js';
import { fixturePath, readFixtureTensor } from '../helpers/fixtures.js';
import { assertClose, loadModel, tempDir } from './helpers.js';

const BASE = 'tiny-llama-peftx';
const REF = 'tiny-llama-peftx-extra-ref.safetensors';
const MODULES = ['model.layers.0.self_attn.q_proj', 'model.layers.0.mlp.down_proj'];
const FIXTURE_CONFIG: LoraConfig = { r: 4, loraAlpha: 4, targetModules: ['q_proj', 'down_proj'] };

const loadBase = () => loadModel(fixturePath(BASE));
const ref = async (name: string) => (await readFixtureTensor(REF, name)).data as Float32Array;
async function inputIds(): Promise<number[][]> {
  const t = await readFixtureTensor(REF, 'input_ids');
  const [b, s] = t.shape as [number, number];
  const flat = Array.from(t.data as BigInt64Array, Number);
  return Array.from({ length: b }, (_, i) => flat.slice(i * s, (i + 1) * s));
}
const lora = (model: CausalLM, path: string) => model.getSubmodule(path) as LoraLinear;
const baseWeight = (layer: LoraLinear) => (layer.base_layer as Linear).weight;
const weightOf = async (model: CausalLM, path: string) => (model.getSubmodule(`${path}`) as Linear).weight.data();
const logitsOf = async (m: { forward(i: { inputIds: number[][] }): Promise<{ logits: { data(): Promise<Float32Array> } }> }) => (await m.forward({ inputIds: await inputIds() })).logits.data();
const maxAbs = (x: ArrayLike<number>) => Array.from(x).reduce((a, v) => Math.max(a, Math.abs(v)), 0);
const frob = (x: ArrayLike<number>) => Math.sqrt(Array.from(x).reduce((a, v) => a + v * v, 0));

async function loadBf16(): Promise<CausalLM> {
  const dir = fixturePath(BASE);
  const source = await openCheckpoint(dir);
  try {
    return await buildCausalLM(await loadConfig(dir), source, 'bfloat16', TEST_DEVICE);
  } finally {
    await source.close();
  }
}

for (const init of ['pissa', 'olora'] as const) {
  // Follows test_lora_pissa_linear_init_default / test_lora_olora_linear_init_default, with PEFT's own numbers.
  test(`${init}: residual base weights, deltas and logits match PEFT's`, async () => {
    const peft = await getPeftModelAsync(await loadBase(), { ...FIXTURE_CONFIG, initLoraWeights: init });
    for (const path of MODULES) {
      const layer = lora(peft.model, path);
      assertClose(await baseWeight(layer).data(), await ref(`${init}.residual.${path}.weight`), `${init} residual ${path}`);
      assertClose(await layer.deltaWeight('default').data(), await ref(`${init}.delta.${path}`), `${init} delta ${path}`);
    }
    const logits = await logitsOf(peft);
    assertClose(logits, await ref(`${init}.logits`), `${init} logits`);
    // PEFT's test: the model computes what the base computed (W_res + scaling B A = W).
    assertClose(logits, await logitsOf(await loadBase()), `${init} logits vs base`);
  });

  test(`${init}: loading the adapter PEFT saved onto the original base reproduces PEFT's logits`, async () => {
    const peft = await PeftModel.fromPretrained(await loadBase(), fixturePath(`${BASE}-${init}`));
    assert.equal(peft.peftConfig.get('default')!.initLoraWeights, init);
    for (const path of MODULES) assertClose(await baseWeight(lora(peft.model, path)).data(), await ref(`${init}.residual.${path}.weight`), `${init} loaded residual ${path}`);
    assertClose(await logitsOf(peft), await ref(`${init}.logits`), `${init} loaded logits`);
  });
}

test('olora: A and B are PEFT\'s themselves (LAPACK\'s QR signs); B has orthonormal columns, A is upper triangular', async () => {
  const peft = await getPeftModelAsync(await loadBase(), { ...FIXTURE_CONFIG, initLoraWeights: 'olora' });
  const { SafetensorsFile } = await import('../../src/io/safetensors.js');
  const saved = await SafetensorsFile.open(fixturePath(`${BASE}-olora`, 'adapter_model.safetensors'));
  const { decodeTensor } = await import('../../src/io/decode.js');
  try {
    for (const path of MODULES) {
      const layer = lora(peft.model, path);
      const a = await layer.lora_A.get('default')!.weight.data();
      const b = await layer.lora_B.get('default')!.weight.data();
      for (const [which, mine] of [['A', a], ['B', b]] as const) {
        const theirs = decodeTensor('float32', await saved.read(`base_model.model.${path}.lora_${which}.weight`)) as Float32Array;
        assertClose(mine, theirs, `olora lora_${which} ${path}`);
      }
      const r = 4;
      const n = layer.inFeatures;
      const m = layer.outFeatures;
      for (let c = 0; c < r; c++) for (let j = 0; j < c; j++) assert.equal(a[c * n + j], 0, 'A = R[:r] is upper triangular');
      for (let p = 0; p < r; p++) {
        for (let q = 0; q < r; q++) {
          let d = 0;
          for (let i = 0; i < m; i++) d += b[i * r + p]! * b[i * r + q]!;
          assert.ok(Math.abs(d - (p === q ? 1 : 0)) < 1e-5, `B^T B = I at (${p}, ${q}): ${d}`);
        }
      }
    }
  } finally {
    await saved.close();
  }
});

test('pissa: B = V_r sqrt(S_r / scaling), A = sqrt(S_r / scaling) U_r^T: orthogonal columns of B / rows of A with the singular values', async () => {
  const peft = await getPeftModelAsync(await loadBase(), { r: 4, loraAlpha: 8, targetModules: ['q_proj'], initLoraWeights: 'pissa' });
  const path = MODULES[0]!;
  const w = Float64Array.from(await weightOf(await loadBase(), path));
  const { s } = thinSvd(w, 64, 64);
  const layer = lora(peft.model, path);
  const a = await layer.lora_A.get('default')!.weight.data();
  for (let c = 0; c < 4; c++) {
    let norm = 0;
    for (let j = 0; j < 64; j++) norm += a[c * 64 + j]! ** 2;
    assert.ok(Math.abs(norm - s[c]! / 2) < 1e-5 * s[0]!, `|A row ${c}|^2 = S_${c} / scaling`);
  }
});

// test_lora_pissa_conversion_same_output_after_loading (+ _with_rank_pattern, _with_alpha_pattern, _with_rslora),
// test_olora_conversion_same_output_after_loading (+ the same three).
const CONVERSIONS: [string, LoraConfig, number][] = [
  ['plain', {}, 4],
  ['rank_pattern', { rankPattern: { q_proj: 8 } }, 8],
  ['alpha_pattern', { alphaPattern: { q_proj: 5 } }, 4],
  ['rslora', { useRslora: true }, 4],
];
for (const init of ['pissa', 'olora'] as const) {
  for (const [label, extra, qRank] of CONVERSIONS) {
    test(`${init} (${label}): saved as plain LoRA of rank 2r on the original base, the same output`, async () => {
      const dir = await tempDir();
      const original = await loadBase();
      const config: LoraConfig = { ...FIXTURE_CONFIG, ...extra, initLoraWeights: init };
      const peft = await getPeftModelAsync(await loadBase(), config);
      await peft.savePretrained(join(dir, 'init-model'));
      for (const path of MODULES) {
        const b = lora(peft.model, path).lora_B.get('default')!.weight;
        noGrad(() => overwriteTensor(b, mulScalar(b, 2)));
      }
      const trained = await logitsOf(peft);
      assert.ok(maxAbs((await logitsOf(original)).map((v, i) => v - trained[i]!)) > 1e-4, 'the trained adapter changes the output');

      await peft.savePretrained(join(dir, 'mutated'));
      const loaded = await PeftModel.fromPretrained(await loadBase(), join(dir, 'mutated'));
      assertClose(await logitsOf(loaded), trained, 'loaded mutated adapter');
      assert.equal(loaded.peftConfig.get('default')!.r, 4);
      assert.equal(lora(loaded.model, MODULES[0]!).lora_A.get('default')!.weight.shape[0], qRank);

      const before = JSON.stringify(peft.peftConfig.get('default'));
      await peft.savePretrained(join(dir, 'converted'), { pathInitialModelForWeightConversion: join(dir, 'init-model') });
      assert.equal(JSON.stringify(peft.peftConfig.get('default')), before, 'the adapter config is unchanged');
      const initJson = JSON.parse(await readFile(join(dir, 'init-model', 'adapter_config.json'), 'utf8'));
      assert.equal(initJson.init_lora_weights, true, 'the initial folder was rewritten with init_lora_weights true');

      const converted = await PeftModel.fromPretrained(await loadBase(), join(dir, 'converted'));
      const c = converted.peftConfig.get('default')!;
      assert.equal(c.initLoraWeights, true);
      assert.equal(c.r, 8);
      assert.equal(lora(converted.model, MODULES[0]!).lora_A.get('default')!.weight.shape[0], 2 * qRank);
      for (const path of MODULES) {
        const mine = lora(converted.model, path);
        assert.ok(Math.abs(mine.settingsOf('default')!.scaling - lora(peft.model, path).settingsOf('default')!.scaling) < 1e-12, `${path}: same scaling`);
        // The base stays the original one, and W + delta' = W_res + scaling B A.
        const w = await weightOf(original, path);
        assert.deepEqual(await baseWeight(mine).data(), w, `${path}: the base weights are the original ones`);
        const res = await baseWeight(lora(peft.model, path)).data();
        const trainedDelta = await lora(peft.model, path).deltaWeight('default').data();
        assertClose(await mine.deltaWeight('default').data(), res.map((v, i) => v + trainedDelta[i]! - w[i]!), `${path}: converted delta`);
      }
      assertClose(await logitsOf(converted), trained, 'converted adapter on the original base');
    });
  }

  // test_pissa_rank_pattern_and_rslora_raises, test_pissa_alpha_pattern_and_rslora_raises, and the olora ones.
  for (const pattern of [{ rankPattern: { q_proj: 2 } }, { alphaPattern: { q_proj: 2 } }]) {
    test(`${init}: conversion with rsLoRA and ${Object.keys(pattern)[0]} is refused`, async () => {
      const dir = await tempDir();
      const peft = await getPeftModelAsync(await loadBase(), { ...FIXTURE_CONFIG, ...pattern, useRslora: true, initLoraWeights: init });
      await peft.savePretrained(join(dir, 'init-model'));
      await assert.rejects(peft.savePretrained(join(dir, 'out'), { pathInitialModelForWeightConversion: join(dir, 'init-model') }), /not supported when using rankPattern or alphaPattern at the same time as useRslora/);
    });
  }
}

test('pissa_niter_N: seeded, reproducible, output unchanged, and close to the full SVD (test_lora_pissa_linear_init_default)', async () => {
  const make = async (seed: number) => getPeftModelAsync(await loadBase(), { ...FIXTURE_CONFIG, initLoraWeights: 'pissa_niter_16', seed });
  const [p1, p2, p3] = [await make(3), await make(3), await make(4)];
  const path = MODULES[1]!;
  const a1 = await lora(p1.model, path).lora_A.get('default')!.weight.data();
  assert.deepEqual(await lora(p2.model, path).lora_A.get('default')!.weight.data(), a1, 'same seed, same A');
  assert.deepEqual(await baseWeight(lora(p2.model, path)).data(), await baseWeight(lora(p1.model, path)).data(), 'same seed, same residual');
  assert.notDeepEqual(await lora(p3.model, path).lora_A.get('default')!.weight.data(), a1, 'another seed, another sketch');
  assertClose(await logitsOf(p1), await logitsOf(await loadBase()), 'pissa_niter_16 logits vs base');
  // This random-init base has a tiny gap sigma_4 / sigma_5 (1.016 on q_proj), so the subspace iteration converges
  // slowly: after 16 iterations the top-4 product is still ~0.1 off (numpy's run of the same algorithm agrees); with
  // enough iterations it reaches PEFT's full-SVD delta.
  const converged = await getPeftModelAsync(await loadBase(), { ...FIXTURE_CONFIG, initLoraWeights: 'pissa_niter_600' });
  for (const m of MODULES) {
    assertClose(await lora(converged.model, m).deltaWeight('default').data(), await ref(`pissa.delta.${m}`), `pissa_niter_600 delta ${m} vs full SVD`, 1e-3);
  }
  // With no subspace iteration the sketch is a rougher approximation of the top-r subspace.
  const rough = await getPeftModelAsync(await loadBase(), { ...FIXTURE_CONFIG, initLoraWeights: 'pissa_niter_0' });
  assertClose(await logitsOf(rough), await logitsOf(await loadBase()), 'pissa_niter_0 still leaves the output unchanged');
});

test('pissa, olora and loftq need the async entry points; orthogonal and the classic inits do not', async () => {
  for (const init of ['pissa', 'pissa_niter_2', 'olora', 'loftq'] as const) {
    assert.throws(() => getPeftModel(null as unknown as CausalLM, { ...FIXTURE_CONFIG, initLoraWeights: init, loftqConfig: { loftqIter: 1 } }), /getPeftModelAsync/);
  }
  getPeftModel(await loadBase(), { ...FIXTURE_CONFIG, initLoraWeights: 'orthogonal' });
});

test('orthogonal: A and B non-zero, B A = 0, the output unchanged (test_lora_init_orthogonal)', async () => {
  const peft = getPeftModel(await loadBase(), { ...FIXTURE_CONFIG, initLoraWeights: 'orthogonal', seed: 1 });
  for (const path of MODULES) {
    const layer = lora(peft.model, path);
    assert.ok(maxAbs(await layer.lora_A.get('default')!.weight.data()) > 0);
    assert.ok(maxAbs(await layer.lora_B.get('default')!.weight.data()) > 0);
    assert.ok(maxAbs(await layer.deltaWeight('default').data()) < 1e-6, 'B A = 0');
  }
  assertClose(await logitsOf(peft), await logitsOf(await loadBase()), 'orthogonal logits vs base');
  const again = getPeftModel(await loadBase(), { ...FIXTURE_CONFIG, initLoraWeights: 'orthogonal', seed: 1 });
  assert.deepEqual(await lora(again.model, MODULES[0]!).lora_A.get('default')!.weight.data(), await lora(peft.model, MODULES[0]!).lora_A.get('default')!.weight.data(), 'seeded');
});

test('orthogonal: an odd rank is refused (test_lora_init_orthogonal_odd_rank_raises)', async () => {
  const model = await loadBase();
  assert.throws(() => getPeftModel(model, { ...FIXTURE_CONFIG, r: 7, initLoraWeights: 'orthogonal' }), /Orthogonal initialization requires the LoRA rank to be even, got 7 instead/);
});

test('dtype rules with a bfloat16 base (test_lora_init_orthogonal_half_precision_dtype): factors bf16 values kept in float32, base stays bf16', async () => {
  const isBf16 = (x: Float32Array) => x.every((v) => bf16ArrayToF32(Uint16Array.of(f32ToBf16Bits(v)))[0] === v);
  for (const init of ['orthogonal', 'pissa', 'olora'] as const) {
    const peft = await getPeftModelAsync(await loadBf16(), { ...FIXTURE_CONFIG, initLoraWeights: init });
    const layer = lora(peft.model, MODULES[0]!);
    const a = layer.lora_A.get('default')!.weight;
    assert.equal(a.dtype, 'float32', `${init}: adapters are float32 (autocast_adapter_dtype)`);
    assert.ok(isBf16(await a.data()), `${init}: A holds bfloat16 values`);
    assert.ok(isBf16(await layer.lora_B.get('default')!.weight.data()), `${init}: B holds bfloat16 values`);
    assert.equal(baseWeight(layer).dtype, 'bfloat16');
  }
  const pissa = await getPeftModelAsync(await loadBf16(), { ...FIXTURE_CONFIG, initLoraWeights: 'pissa' });
  assertClose(await baseWeight(lora(pissa.model, MODULES[0]!)).data(), await ref(`pissa.residual.${MODULES[0]}.weight`), 'bf16 residual', 1e-2);
});

function nf4(values: Float32Array): Float32Array {
  const q = quantizeNf4(values, 64);
  return dequantizeNf4(q.packed, q.absmax, values.length, 64);
}

// TestLoftQ (tests/test_gpu_examples.py): "the error of LoftQ is lower than that of plain quantization".
test('loftq: the base becomes exactly the NF4 of the residual, and Q + B A is closer to W than NF4(W) is', async () => {
  const original = await loadBase();
  for (const iterations of [1, 2]) {
    const peft = await getPeftModelAsync(await loadBase(), { r: 4, loraAlpha: 4, targetModules: ['q_proj', 'down_proj'], initLoraWeights: 'loftq', loftqConfig: { loftqBits: 4, loftqIter: iterations } });
    for (const path of MODULES) {
      const layer = lora(peft.model, path);
      const w = await weightOf(original, path);
      const [m, n] = [layer.outFeatures, layer.inFeatures];
      // What the base must be: NF4(W) after one iteration, NF4(W - L1 R1) after two (L1 R1: top-4 SVD of W - NF4(W)).
      let res = w;
      for (let it = 1; it < iterations; it++) {
        const e = Float64Array.from(w, (v, i) => Math.fround(v - nf4(res)[i]!));
        const { u, s, vt } = thinSvd(e, m, n);
        const k = Math.min(m, n);
        res = Float32Array.from(w, (v, idx) => {
          const [i, j] = [Math.floor(idx / n), idx % n];
          let lr = 0;
          for (let c = 0; c < 4; c++) lr += Math.fround(u[i * k + c]! * Math.sqrt(s[c]!)) * Math.fround(Math.sqrt(s[c]!) * vt[c * n + j]!);
          return v - lr;
        });
      }
      const q = await baseWeight(layer).data();
      const expected = nf4(Float32Array.from(res));
      let mismatches = 0;
      for (let i = 0; i < q.length; i++) if (q[i] !== expected[i]) mismatches++;
      assert.ok(mismatches <= (iterations === 1 ? 0 : q.length * 1e-3), `${path} iter ${iterations}: base = NF4(residual) (${mismatches} of ${q.length} differ)`);
      assert.deepEqual(nf4(q), q, `${path}: the base is a fixed point of NF4 (it is already quantized)`);
      const ba = await lora(peft.model, path).deltaWeight('default').data(); // scaling 1
      const loftqError = frob(w.map((v, i) => v - q[i]! - ba[i]!));
      const plainError = frob(w.map((v, i) => v - nf4(w)[i]!));
      assert.ok(loftqError < plainError, `${path} iter ${iterations}: ||W - (Q + BA)|| ${loftqError} < ||W - NF4(W)|| ${plainError}`);
    }
  }
});

test('loftq: loftqConfig is required, only 4 bits, and round-trips as loftq_config', async () => {
  assert.throws(() => parseAdapterConfig(JSON.stringify({ peft_type: 'LORA', init_lora_weights: 'loftq', loftq_config: {} }), 'adapter_config.json'), /loftq_config/);
  await assert.rejects(getPeftModelAsync(await loadBase(), { ...FIXTURE_CONFIG, initLoraWeights: 'loftq', loftqConfig: { loftqBits: 2 } }), /loftqBits 2 is not supported/);
  const dir = await tempDir();
  const peft = await getPeftModelAsync(await loadBase(), { ...FIXTURE_CONFIG, initLoraWeights: 'loftq', loftqConfig: { loftqIter: 2 } });
  await peft.savePretrained(dir);
  const json = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
  assert.deepEqual([json.init_lora_weights, json.loftq_config], ['loftq', { loftq_bits: 4, loftq_iter: 2 }]);
  assert.deepEqual(parseAdapterConfig(JSON.stringify(json), 'adapter_config.json').loftqConfig, { loftqBits: 4, loftqIter: 2 });
});

test('init_lora_weights spellings: "OLoRA" as olora, pissa_niter_N, unknown ones refused', () => {
  const parse = (init: unknown) => parseAdapterConfig(JSON.stringify({ peft_type: 'LORA', init_lora_weights: init }), 'adapter_config.json').initLoraWeights;
  assert.equal(parse('OLoRA'), 'OLoRA');
  assert.equal(parse('pissa_niter_16'), 'pissa_niter_16');
  assert.equal(parse('orthogonal'), 'orthogonal');
  assert.throws(() => parse('pissa_fast'), /not supported/);
  assert.throws(() => parse('eva'), /not supported/);
});

test('householderQr follows LAPACK: R\'s diagonal has the opposite sign of the column\'s leading entry', () => {
  const { q, r } = householderQr(Float64Array.of(3, 1, 4, 1, 5, 9), 3, 2);
  assert.ok(r[0]! < 0 && Math.abs(r[0]! + Math.hypot(3, 4, 5)) < 1e-12);
  const back = [0, 1, 2].flatMap((i) => [0, 1].map((j) => q[i * 2]! * r[j]! + q[i * 2 + 1]! * r[2 + j]!));
  assertClose(back, [3, 1, 4, 1, 5, 9], 'Q R = X');
});
