// Config fields that change the computation (sliding windows, rope types, activations, partial rotary, Gemma 2's
// eager soft-capping), against transformers' outputs on the fixture weights (test/fixtures/llama-gaps/make.py).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import '../../src/index.js';
import { openCheckpoint } from '../../src/io/checkpoint.js';
import { buildCausalLM } from '../../src/models/build.js';
import { parseModelConfig } from '../../src/models/config.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';
import { fixturePath, readFixtureMetadata, readFixtureTensor } from '../helpers/fixtures.js';
import { assertClose } from '../helpers/numeric.js';

await prepareTestDevice();

const REF = 'llama-gaps/llama-gaps-ref.safetensors';
const cases = JSON.parse((await readFixtureMetadata(REF))['cases']!) as Record<string, { base: string; overrides: Record<string, unknown>; attn_implementation: 'eager' | 'sdpa' }>;

/** The fixture's config.json with the case's overrides, as make.py builds it (null removes a key). */
async function caseConfig(base: string, overrides: Record<string, unknown>): Promise<Record<string, unknown>> {
  const raw = JSON.parse(await readFile(fixturePath(base, 'config.json'), 'utf8')) as Record<string, unknown>;
  for (const [k, v] of Object.entries(overrides)) {
    if (v === null) delete raw[k];
    else raw[k] = v;
  }
  if ('rope_parameters' in overrides) delete raw['rope_scaling'];
  return raw;
}

async function inputRows(base: string): Promise<number[][]> {
  const t = await readFixtureTensor(`${base}-ref.safetensors`, 'input_ids');
  const [B, T] = t.shape as [number, number];
  const flat = Array.from(t.data as BigInt64Array, Number);
  return Array.from({ length: B }, (_, b) => flat.slice(b * T, (b + 1) * T));
}

for (const [name, { base, overrides, attn_implementation: attnImplementation }] of Object.entries(cases)) {
  test(`${name}: logits within 1e-4 and greedy generation identical to transformers (${JSON.stringify(overrides)})`, async () => {
    const config = parseModelConfig(await caseConfig(base, overrides), `${name} config.json`, { attnImplementation });
    const source = await openCheckpoint(fixturePath(base));
    const model = await buildCausalLM(config, source, 'float32', TEST_DEVICE).finally(() => source.close());
    const rows = await inputRows(base);
    const { logits } = await model.forward({ inputIds: rows });
    const expected = (await readFixtureTensor(REF, `${name}.logits`)).data as Float32Array;
    assertClose(await logits.data(), expected, 1e-4, `${name} logits`);
    const prompt = rows[0]!.slice(0, 8);
    const [seq] = await model.generate([prompt], { maxNewTokens: 16, doSample: false, eosTokenId: null });
    assert.deepEqual(seq!.slice(8), Array.from((await readFixtureTensor(REF, `${name}.generate`)).data as BigInt64Array, Number));
  });
}

test('a Mistral window changes the output once the rows are longer than it (the reference is not the full-attention model)', async () => {
  const full = (await readFixtureTensor('tiny-llama-ref.safetensors', 'logits_base')).data as Float32Array;
  const windowed = (await readFixtureTensor(REF, 'mistral_window4.logits')).data as Float32Array;
  const V = 384;
  // Positions 0-3 see the same keys either way; position 23 sees only 20-23.
  assertClose(windowed.subarray(0, 4 * V), full.subarray(0, 4 * V), 1e-5, 'first window');
  let diff = 0;
  for (let i = 23 * V; i < 24 * V; i++) diff = Math.max(diff, Math.abs(windowed[i]! - full[i]!));
  assert.ok(diff > 1e-3, `position 23 differs from full attention by ${diff}`);
});
