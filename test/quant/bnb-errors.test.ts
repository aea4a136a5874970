import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AutoModelForCausalLM } from '../../src/models/auto.js';
import type { LinearLoadContext } from '../../src/models/build.js';
import { loadConfig } from '../../src/models/config.js';
import '../../src/quant/index.js';
import { parseBnbQuantConfig } from '../../src/quant/bnb-config.js';
import { bnbLinearLoader } from '../../src/quant/bnb-loader.js';
import { QuantError } from '../../src/quant/errors.js';
import type { RawTensor } from '../../src/quant/quant-state.js';
import { BNB_DIR, memorySource, readAllTensors, STATE_SUFFIX, tempDir } from './bnb-fixture.js';

const checkpoint = await readAllTensors(`${BNB_DIR}/model.safetensors`);
const config = await loadConfig(BNB_DIR);
const Q = 'model.layers.0.self_attn.q_proj';
const quantConfig = config.raw['quantization_config'] as Record<string, unknown>;

function loadQProj(tensors: ReadonlyMap<string, RawTensor>, shape: { inFeatures: number; outFeatures: number } = { inFeatures: 64, outFeatures: 64 }) {
  const ctx: LinearLoadContext = { source: memorySource(tensors), prefix: Q, bias: false, dtype: 'bfloat16', device: 'cpu', config, ...shape };
  return bnbLinearLoader(parseBnbQuantConfig(quantConfig, 'config.json'))(ctx);
}

function edited(edit: (tensors: Map<string, RawTensor>) => void): Map<string, RawTensor> {
  const copy = new Map(checkpoint);
  edit(copy);
  return copy;
}

function editedState(edit: (state: Record<string, unknown>) => void): Map<string, RawTensor> {
  return edited((tensors) => {
    const name = `${Q}.weight${STATE_SUFFIX}`;
    const state = JSON.parse(new TextDecoder().decode(tensors.get(name)!.data)) as Record<string, unknown>;
    edit(state);
    const data = new TextEncoder().encode(JSON.stringify(state));
    tensors.set(name, { dtype: 'uint8', shape: [data.length], data });
  });
}

async function rejectsWith(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof QuantError, `expected a QuantError, got ${String(e)}`);
    assert.match(e.message, pattern);
    assert.equal(e.message.split('. ').length, 1, `one sentence: ${e.message}`);
    return true;
  });
}

test('the unedited checkpoint loads (the edits below are the only difference)', async () => {
  assert.equal((await loadQProj(checkpoint)).outFeatures, 64);
});

test('a quant state whose shape disagrees with the packed weight is refused', async () => {
  await rejectsWith(loadQProj(editedState((s) => (s['shape'] = [64, 32]))), /q_proj\.weight" has 2048 packed bytes \[2048, 1\], but its quant state shape \[64, 32\] needs 1024/);
});

test('a quant state whose shape disagrees with the config is refused', async () => {
  await rejectsWith(loadQProj(checkpoint, { inFeatures: 64, outFeatures: 32 }), /has quant-state shape \[64, 64\], but the config implies \[32, 64\]/);
});

test('absmax codes that do not cover the quant state are refused', async () => {
  const tensors = edited((t) => t.set(`${Q}.weight.absmax`, { dtype: 'uint8', shape: [32], data: new Uint8Array(32) }));
  await rejectsWith(loadQProj(tensors), /has "model\.layers\.0\.self_attn\.q_proj\.weight\.absmax" as uint8 \[32\], but its quant state needs uint8 with 64 elements/);
});

test('an fp4 quant state is refused', async () => {
  await rejectsWith(loadQProj(editedState((s) => (s['quant_type'] = 'fp4'))), /uses quant_type "fp4", which loraforge does not support/);
});

test('a blocksize bitsandbytes does not support is refused', async () => {
  await rejectsWith(loadQProj(editedState((s) => (s['blocksize'] = 48))), /uses blocksize 48; bitsandbytes 4-bit blocksizes are 32, 64, 128/);
});

test('missing quant-state tensors are refused', async () => {
  await rejectsWith(loadQProj(edited((t) => t.delete(`${Q}.weight${STATE_SUFFIX}`))), /has no "model\.layers\.0\.self_attn\.q_proj\.weight\.quant_state\.bitsandbytes__nf4" tensor/);
  await rejectsWith(loadQProj(edited((t) => t.delete(`${Q}.weight.nested_absmax`))), /has nested_offset in its quant state but no nested_absmax tensor/);
  await rejectsWith(loadQProj(edited((t) => t.delete(`${Q}.weight.absmax`))), /has no "model\.layers\.0\.self_attn\.q_proj\.weight\.absmax" tensor/);
});

test('quantization_config with fp4, 8-bit or an unknown compute dtype is refused', () => {
  const bad = (patch: Record<string, unknown>) => () => parseBnbQuantConfig({ ...quantConfig, ...patch }, 'm/config.json');
  assert.throws(bad({ bnb_4bit_quant_type: 'fp4' }), /^QuantError: m\/config\.json: quantization_config has bnb_4bit_quant_type "fp4"; loraforge supports only "nf4"/);
  assert.throws(bad({ load_in_4bit: false, load_in_8bit: true }), /asks for 8-bit bitsandbytes \(load_in_8bit\), which loraforge does not support/);
  assert.throws(bad({ bnb_4bit_compute_dtype: 'int8' }), /has bnb_4bit_compute_dtype "int8"/);
  assert.deepStrictEqual(parseBnbQuantConfig({ ...quantConfig, bnb_4bit_compute_dtype: undefined }, 'c'), { computeDtype: 'float32', doubleQuant: true });
});

test('fromPretrained of a folder whose config asks for fp4 fails with that one sentence', async () => {
  const dir = await tempDir();
  await cp(BNB_DIR, dir, { recursive: true });
  const raw = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { quantization_config: Record<string, unknown> };
  raw.quantization_config['bnb_4bit_quant_type'] = 'fp4';
  await writeFile(join(dir, 'config.json'), JSON.stringify(raw));
  await rejectsWith(AutoModelForCausalLM.fromPretrained(dir), /config\.json: quantization_config has bnb_4bit_quant_type "fp4"/);
});
