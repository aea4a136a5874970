/**
 * generate() beyond plain greedy decoding (whose tokens the fixture parity tests pin): the logits path that sampling
 * and the repetition penalty take, step for step against full forwards, and seeded sampling's reproducibility.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AutoModelForCausalLM } from '../../src/index.js';
import { applyRepetitionPenalty, argmax, generate } from '../../src/generate/index.js';
import { noGradAsync } from '../../src/tensor/grad-mode.js';
import { fixturePath } from '../helpers/fixtures.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';

await prepareTestDevice();

const PROMPTS = [
  [5, 9, 200, 31, 7],
  [17, 3, 3, 250, 91, 12, 40, 8, 77],
];

test('a repetition penalty decodes as full forwards with the penalty applied step by step', async () => {
  const model = await AutoModelForCausalLM.fromPretrained(fixturePath('tiny-llama'), { dtype: 'float32', device: TEST_DEVICE });
  const penalty = 1.7;
  const out = await generate(model, PROMPTS, { maxNewTokens: 8, repetitionPenalty: penalty, eosTokenId: null });
  for (const [row, prompt] of PROMPTS.entries()) {
    const expected = [...prompt];
    await noGradAsync(async () => {
      for (let step = 0; step < 8; step++) {
        const logits = await model.run({ inputIds: [expected], lastTokenOnly: true }).logits.data();
        const scores = logits.slice();
        applyRepetitionPenalty(scores, expected, penalty);
        expected.push(argmax(scores));
      }
    });
    assert.deepEqual(out[row], expected, `row ${row}`);
  }
});

test('seeded sampling repeats itself and differs between seeds', async () => {
  const model = await AutoModelForCausalLM.fromPretrained(fixturePath('tiny-llama'), { dtype: 'float32', device: TEST_DEVICE });
  const options = { maxNewTokens: 12, doSample: true, temperature: 1.5, topK: 50, eosTokenId: null };
  const a = await generate(model, PROMPTS, { ...options, seed: 3 });
  const b = await generate(model, PROMPTS, { ...options, seed: 3 });
  const c = await generate(model, PROMPTS, { ...options, seed: 4 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  for (const row of a) for (const id of row) assert.ok(Number.isInteger(id) && id >= 0 && id < model.config.vocabSize);
});
