import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ADAPTER_CONFIG_NAME, loraConfigToJson, parseAdapterConfig, resolveLoraConfig } from '../../src/peft/index.js';
import { adapterDir } from './helpers.js';

test('a fixture adapter_config.json parses and serialises back to the same bytes', async () => {
  const path = join(adapterDir('tiny-llama', 'dora'), ADAPTER_CONFIG_NAME);
  const text = await readFile(path, 'utf8');
  const config = parseAdapterConfig(text, path);
  assert.deepEqual([config.r, config.loraAlpha, config.useDora, config.targetModules], [8, 16, true, ['q_proj', 'down_proj', 'v_proj']]);
  assert.equal(loraConfigToJson(config, { inferenceMode: true }), text);
});

test('floats are written as Python writes them, ints stay ints', () => {
  const json = JSON.parse(loraConfigToJson(resolveLoraConfig({ loraDropout: 1e-5, loraAlpha: 16, alphaPattern: { q_proj: 2.5 } }), { inferenceMode: false })) as Record<string, unknown>;
  assert.deepEqual([json['lora_alpha'], json['alpha_pattern'], json['inference_mode']], [16, { q_proj: 2.5 }, false]);
  assert.match(loraConfigToJson(resolveLoraConfig({ loraDropout: 1e-5 }), { inferenceMode: true }), /"lora_dropout": 1e-05,/);
  assert.match(loraConfigToJson(resolveLoraConfig({}), { inferenceMode: true }), /"lora_dropout": 0\.0,/);
});

test('LoraConfig fields loraforge does not interpret are kept through a load and save; unknown keys are dropped as PEFT drops them', () => {
  const warn = mock.method(console, 'warn', () => {});
  const config = parseAdapterConfig(JSON.stringify({ peft_type: 'LORA', target_modules: 'q_proj', loftq_config: { loftq_bits: 4 }, future_field: [1, 'x'] }), 'adapter_config.json');
  warn.mock.restore();
  const json = JSON.parse(loraConfigToJson(config, { inferenceMode: true })) as Record<string, unknown>;
  assert.deepEqual([json['loftq_config'], 'future_field' in json], [{ loftq_bits: 4 }, false]);
  assert.equal(json['target_modules'], 'q_proj');
});

test('a malformed field is reported with its name and the file', () => {
  assert.throws(() => parseAdapterConfig(JSON.stringify({ peft_type: 'LORA', r: 'eight' }), '/a/adapter_config.json'), /\/a\/adapter_config\.json: "r" must be a number, got "eight"/);
});
