/**
 * gpt-oss's MXFP4 expert layout, built here from the format's definition (OCP MX: blocks of 32 FP4 E2M1 values,
 * two per byte low nibble first, one E8M0 scale per block; transformers' *_blocks [E, out, in / 32, 16] and
 * *_scales [E, out, in / 32] of the transposed [E, in, out] parameter), loads dequantized to the compute dtype and
 * matches the dequantized reference computed below from the definition alone; loadIn4bit quantizes it to NF4.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AutoModelForCausalLM } from '../../src/index.js';
import { MoeExperts } from '../../src/models/moe.js';
import { Linear4bit, loadIn4bit } from '../../src/quant/index.js';
import { fixturePath } from '../helpers/fixtures.js';
import { assertClose } from '../helpers/numeric.js';
import { editedFolder, type StoredTensor } from './edited-checkpoint.js';

const dir = await mkdtemp(join(tmpdir(), 'mxfp4-'));
after(() => rm(dir, { recursive: true, force: true }));

/** E2M1 from its bits: sign (bit 3), exponent (bits 2-1, bias 1; 0 is subnormal), mantissa (bit 0). */
function e2m1(code: number): number {
  const sign = code & 8 ? -1 : 1;
  const exponent = (code >> 1) & 3;
  const mantissa = code & 1;
  return sign * (exponent === 0 ? mantissa * 0.5 : (1 + mantissa / 2) * 2 ** (exponent - 1));
}

interface Mxfp4 {
  blocks: Uint8Array;
  scales: Uint8Array;
  /** The values the packed form stands for, [E, in, out] as the float parameter. */
  dequantized: Float32Array;
}

/** Quantizes w [E, in, out] along `in` (blocks of 32 per output column): scale 2^ceil(log2(max|x| / 6)), nearest code. */
function quantize(w: Float32Array, E: number, inF: number, outF: number): Mxfp4 {
  const groups = inF / 32;
  const blocks = new Uint8Array(E * outF * groups * 16);
  const scales = new Uint8Array(E * outF * groups);
  const dequantized = new Float32Array(w.length);
  for (let e = 0; e < E; e++) {
    for (let o = 0; o < outF; o++) {
      for (let g = 0; g < groups; g++) {
        const at = (i: number) => (e * inF + g * 32 + i) * outF + o;
        let max = 0;
        for (let i = 0; i < 32; i++) max = Math.max(max, Math.abs(w[at(i)]!));
        const exponent = max === 0 ? 0 : Math.ceil(Math.log2(max / 6));
        const block = (e * outF + o) * groups + g;
        scales[block] = exponent + 127;
        for (let i = 0; i < 32; i++) {
          const x = w[at(i)]! / 2 ** exponent;
          let best = 0;
          for (let c = 1; c < 16; c++) if (Math.abs(e2m1(c) - x) < Math.abs(e2m1(best) - x)) best = c;
          blocks[block * 16 + (i >> 1)]! |= i % 2 === 0 ? best : best << 4;
          dequantized[at(i)] = e2m1(best) * 2 ** exponent;
        }
      }
    }
  }
  return { blocks, scales, dequantized };
}

const f32 = (t: StoredTensor) => new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
const bytes = (a: Float32Array | Uint8Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** The parameter names of gpt-oss's experts with their [in, out] (tiny-gptoss: hidden 64, intermediate 160). */
const PARAMETERS = [['gate_up_proj', 64, 320], ['down_proj', 160, 64]] as const;
const references = new Map<string, Float32Array>();

/** tiny-gptoss with its experts as MXFP4 (`mxfp4`), or as float tensors holding the dequantized values. */
async function variant(mxfp4: boolean, edit: (tensors: Map<string, StoredTensor>) => void = () => {}): Promise<string> {
  const out = join(dir, `${mxfp4 ? 'mxfp4' : 'dequantized'}-${references.size}-${Math.random().toString(36).slice(2)}`);
  return editedFolder(fixturePath('tiny-gptoss'), out, {
    json: mxfp4 ? { quantization_config: { quant_method: 'mxfp4', modules_to_not_convert: ['model.layers.*.self_attn', 'model.layers.*.mlp.router', 'model.embed_tokens', 'lm_head'] } } : {},
    tensors: (tensors) => {
      for (const layer of [0, 1]) {
        for (const [name, inF, outF] of PARAMETERS) {
          const key = `model.layers.${layer}.mlp.experts.${name}`;
          const q = quantize(f32(tensors.get(key)!), 4, inF, outF);
          references.set(key, q.dequantized);
          if (mxfp4) {
            tensors.delete(key);
            tensors.set(`${key}_blocks`, { dtype: 'uint8', shape: [4, outF, inF / 32, 16], data: q.blocks });
            tensors.set(`${key}_scales`, { dtype: 'uint8', shape: [4, outF, inF / 32], data: q.scales });
          } else {
            tensors.set(key, { dtype: 'float32', shape: [4, inF, outF], data: bytes(q.dequantized) });
          }
        }
      }
      edit(tensors);
    },
  });
}

test('MXFP4 experts load dequantized to float32, equal to the values the format defines', async () => {
  const model = await AutoModelForCausalLM.fromPretrained(await variant(true), { dtype: 'float32' });
  const params = new Map(model.namedParameters());
  for (const [key, expected] of references) {
    const loaded = params.get(key)!;
    assert.equal(loaded.dtype, 'float32');
    assert.deepEqual(await loaded.data(), expected, key);
  }
});

test('MXFP4 experts load into a bfloat16 model exactly (FP4 values times powers of two are bf16 values)', async () => {
  const model = await AutoModelForCausalLM.fromPretrained(await variant(true), { dtype: 'bfloat16' });
  const loaded = new Map(model.namedParameters()).get('model.layers.1.mlp.experts.down_proj')!;
  assert.equal(loaded.dtype, 'bfloat16');
  assert.deepEqual(await loaded.data(), references.get('model.layers.1.mlp.experts.down_proj'));
});

test('an MXFP4 model computes the logits of the float model holding the dequantized experts', async () => {
  const ids = [[5, 9, 33, 2, 17, 120, 8, 64]];
  const quantized = await AutoModelForCausalLM.fromPretrained(await variant(true), { dtype: 'float32' });
  const dequantized = await AutoModelForCausalLM.fromPretrained(await variant(false), { dtype: 'float32' });
  assertClose(await (await quantized.forward({ inputIds: ids })).logits.data(), await (await dequantized.forward({ inputIds: ids })).logits.data(), 1e-6, 'logits');
});

test('loadIn4bit (train and serve --qlora) puts an MXFP4 model\'s projections and experts in NF4, as the dequantized float model\'s', async () => {
  const ids = [[5, 9, 33, 2, 17, 120, 8, 64]];
  const fromMxfp4 = await loadIn4bit(await variant(true), {});
  const modules = [...fromMxfp4.namedModules()].map(([, m]) => m);
  assert.equal(modules.filter((m) => m instanceof Linear4bit).length, 2 * 4, 'q, k, v and o of both layers');
  const experts = modules.filter((m): m is MoeExperts => m instanceof MoeExperts);
  assert.ok(experts.length === 2 && experts.every((e) => e.isQuantized('gate_up_proj') && e.isQuantized('down_proj')));
  // The FP4 values times powers of two are bfloat16 values, so both round the same experts to the same NF4 codes.
  const fromFloat = await loadIn4bit(await variant(false), {});
  assert.deepEqual(await (await fromMxfp4.forward({ inputIds: ids })).logits.data(), await (await fromFloat.forward({ inputIds: ids })).logits.data());
});

test('an MXFP4 scale of 255 (E8M0 NaN) is refused, naming the tensor and the block', async () => {
  const name = 'model.layers.0.mlp.experts.down_proj_scales';
  const folder = await variant(true, (tensors) => (tensors.get(name)!.data[3] = 255));
  const file = join(folder, 'model.safetensors');
  await assert.rejects(AutoModelForCausalLM.fromPretrained(folder), {
    message: `${file}: tensor "${name}" holds the E8M0 NaN scale 255 at block 3; the MXFP4 weights are corrupt, so download them again.`,
  });
});

test('float expert tensors under an MXFP4 quantization_config are refused before loading', async () => {
  const folder = await editedFolder(await variant(false), join(dir, 'float-under-mxfp4'), { json: { quantization_config: { quant_method: 'mxfp4' } } });
  await assert.rejects(AutoModelForCausalLM.fromPretrained(folder), {
    message: `${join(folder, 'model.safetensors')} has no tensor "model.layers.0.mlp.experts.gate_up_proj_blocks", which ${join(folder, 'config.json')} implies; the weights do not belong to this config.json or the file is incomplete.`,
  });
});
