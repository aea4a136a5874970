/**
 * Packed training is the same training: the fixture models of every family, each with a LoRA on every linear
 * layer, run a batch of examples once unpacked (right-padded rows, one example each) and once bin-packed into
 * rows (packExamples, collate), on the device that LORAFORGE_TEST_DEVICE selects. Every example's loss (from its
 * own logits), the batch loss and every adapter gradient must agree: positions restart in each example, no token
 * attends across an example's end (a sliding window counts within it) and no example's last token is trained to
 * predict the next example's first.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AutoModelForCausalLM, getPeftModel } from '../../src/index.js';
import { collate, IGNORE_INDEX, packExamples, type Batch, type TokenizedExample } from '../../src/data/index.js';
import type { CausalLMInput } from '../../src/models/causal-lm.js';
import type { PeftModel } from '../../src/peft/index.js';
import { fixturePath } from '../helpers/fixtures.js';
import { editedFolder } from '../models/edited-checkpoint.js';
import { Trainer } from '../../src/train/trainer.js';
import { enableGradientCheckpointing } from '../../src/train/gradient-checkpointing.js';
import { assertClose } from '../helpers/numeric.js';
import { freshPeft, reversalExamples, tempDir, testArgs } from './helpers.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';
import { maxAbsDiff, seededValues } from '../helpers/numeric.js';

await prepareTestDevice();

const VOCAB = 384;

/**
 * Seeded examples of lengths 3..23: the odd ones with a first quarter (a "prompt") that carries no label, the even
 * ones trained on every token, their first included (which a packed row must not make the previous one's target).
 */
function examples(count: number): TokenizedExample[] {
  const values = seededValues(count * 24, 17);
  return Array.from({ length: count }, (_, i) => {
    const n = 3 + ((i * 7) % 21);
    const inputIds = Array.from({ length: n }, (_, t) => 1 + Math.floor(Math.abs(values[i * 24 + t]!) * (VOCAB - 2)));
    return { inputIds, labels: inputIds.map((id, t) => (i % 2 === 1 && t < n / 4 ? IGNORE_INDEX : id)) };
  });
}

function input(b: Batch): CausalLMInput {
  return { inputIds: b.inputIds, labels: b.labels, attentionMask: b.attentionMask, ...(b.segmentLengths ? { segmentLengths: b.segmentLengths } : {}) };
}

/** Summed negative log-likelihood (float64) of an example's targets from its T x V logits starting at row `at`. */
function exampleLoss(logits: Float32Array, at: number, ex: TokenizedExample): number {
  let total = 0;
  for (let t = 0; t + 1 < ex.inputIds.length; t++) {
    const target = ex.labels[t + 1]!;
    if (target === IGNORE_INDEX) continue;
    const row = logits.subarray((at + t) * VOCAB, (at + t + 1) * VOCAB);
    let mx = -Infinity;
    for (const x of row) mx = Math.max(mx, x);
    let z = 0;
    for (const x of row) z += Math.exp(x - mx);
    total += mx + Math.log(z) - row[target]!;
  }
  return total;
}

interface Pass {
  loss: number;
  /** Per example, in the examples' order. */
  exampleLosses: number[];
  grads: Map<string, Float32Array>;
}

async function pass(model: PeftModel, batch: Batch, placement: (i: number) => number, exs: readonly TokenizedExample[]): Promise<Pass> {
  for (const p of model.trainableParameters().values()) p.grad = null;
  const out = model.run(input(batch));
  const loss = await out.loss!.item();
  await out.loss!.backward();
  const logits = await out.logits.data();
  const grads = new Map<string, Float32Array>();
  for (const [name, p] of model.trainableParameters()) grads.set(name, await p.grad!.data());
  return { loss, exampleLosses: exs.map((ex, i) => exampleLoss(logits, placement(i), ex)), grads };
}

/**
 * tiny-phi3 with Phi-3's longrope and original_max_position_embeddings 16: examples longer than 16 rotate with
 * long_factor, shorter ones with short_factor, so a packed row must pick the factors per example, not by its
 * own largest position.
 */
async function longropePhi3(): Promise<string> {
  const factors = (x: number) => Array.from({ length: 8 }, (_, i) => 1 + x * i);
  return editedFolder(fixturePath('tiny-phi3'), `${await tempDir('loraforge-packing-')}/phi3-longrope`, {
    json: { original_max_position_embeddings: 16, rope_parameters: { rope_type: 'longrope', rope_theta: 10000, partial_rotary_factor: 1.0, short_factor: factors(0.5), long_factor: factors(3) } },
  });
}

const FAMILIES = ['tiny-phi3-longrope', 'tiny-llama', 'tiny-qwen2', 'tiny-qwen3', 'tiny-gemma2', 'tiny-gemma3', 'tiny-phi3', 'tiny-smollm3', 'tiny-olmo2', 'tiny-mixtral', 'tiny-qwen3moe', 'tiny-gptoss'];

for (const name of FAMILIES) {
  test(`${name}: packed and unpacked training give the same per-example losses and adapter gradients`, async () => {
    const folder = name === 'tiny-phi3-longrope' ? await longropePhi3() : fixturePath(name);
    const base = await AutoModelForCausalLM.fromPretrained(folder, { dtype: 'float32', device: TEST_DEVICE });
    // init false: lora_B starts non-zero, so lora_A's gradients are not all zero either.
    const model = getPeftModel(base, { r: 4, loraAlpha: 8, targetModules: 'all-linear', initLoraWeights: false, seed: 5 });
    const exs = examples(9);
    const rows = packExamples(exs, 40);
    assert.ok(rows.length < exs.length && rows.some((r) => r.segmentLengths!.length >= 3), 'the examples pack several to a row');
    // Where each example sits in the packed batch: row-major offsets of [rows, T] logits.
    const packedBatch = collate(rows, 0);
    const T = packedBatch.inputIds[0]!.length;
    const where = new Map<TokenizedExample, number>();
    const byIds = new Map(exs.map((e) => [e.inputIds.join(','), e]));
    rows.forEach((r, ri) => {
      let at = 0;
      for (const len of r.segmentLengths!) {
        where.set(byIds.get(r.inputIds.slice(at, at + len).join(','))!, ri * T + at);
        at += len;
      }
    });
    assert.equal(where.size, exs.length);
    // The reference: each example alone, a batch of one (as transformers computes it: dynamic and longrope RoPE
    // take their factors from the forward's largest position, which a padded batch would share), its mean loss and
    // gradients weighted by its share of the targets, which is what one batch of all of them trains.
    const targets = (e: TokenizedExample) => e.labels.filter((l, t) => t > 0 && l !== IGNORE_INDEX).length;
    const total = exs.reduce((s, e) => s + targets(e), 0);
    assert.equal(packedBatch.targetTokens, total);
    const plain: Pass = { loss: 0, exampleLosses: [], grads: new Map() };
    for (const ex of exs) {
      const alone = await pass(model, collate([ex], 0), () => 0, [ex]);
      const w = targets(ex) / total;
      plain.loss += alone.loss * w;
      plain.exampleLosses.push(alone.exampleLosses[0]!);
      for (const [param, g] of alone.grads) {
        const sum = plain.grads.get(param) ?? new Float32Array(g.length);
        for (let j = 0; j < g.length; j++) sum[j] += g[j]! * w;
        plain.grads.set(param, sum);
      }
    }
    const packed = await pass(model, packedBatch, (i) => where.get(exs[i]!)!, exs);

    exs.forEach((_, i) => {
      const [a, b] = [packed.exampleLosses[i]!, plain.exampleLosses[i]!];
      assert.ok(Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b)), `example ${i}: packed loss ${a} vs unpacked ${b}`);
    });
    assert.ok(Math.abs(packed.loss - plain.loss) <= 1e-5 * plain.loss, `batch loss ${packed.loss} vs ${plain.loss}`);
    for (const [param, want] of plain.grads) {
      const { diff, scale } = maxAbsDiff(packed.grads.get(param)!, want);
      assert.ok(scale > 0, `${param} has a gradient`);
      assert.ok(diff <= 1e-5 * scale, `${param}: gradient differs by ${diff}, over 1e-5 of its scale ${scale}`);
    }
  });
}

test('without segment lengths the same packed rows train across example boundaries, so the losses differ', async () => {
  const base = await AutoModelForCausalLM.fromPretrained(fixturePath('tiny-llama'), { dtype: 'float32', device: TEST_DEVICE });
  const rows = packExamples(examples(9), 40);
  const batch = collate(rows, 0);
  const joined = await base.run({ inputIds: batch.inputIds, labels: batch.labels, attentionMask: batch.attentionMask }).loss!.item();
  const separate = await base.run(input(batch)).loss!.item();
  assert.ok(Math.abs(joined - separate) > 1e-3, `losses ${joined} and ${separate}`);
});

test('segment lengths that do not fit the batch, or with KV caches, are refused in one sentence', async () => {
  const base = await AutoModelForCausalLM.fromPretrained(fixturePath('tiny-llama'), { dtype: 'float32', device: TEST_DEVICE });
  const ids = [[5, 6, 7, 8]];
  assert.throws(() => base.run({ inputIds: ids, segmentLengths: [[3, 2]] }), /segmentLengths of row 0 add up to 5, more than the row's 4 tokens/);
  assert.throws(() => base.run({ inputIds: ids, segmentLengths: [[2], [2]] }), /segmentLengths lists 2 rows for a batch of 1/);
  assert.throws(() => base.run({ inputIds: ids, segmentLengths: [[2, 0, 2]] }), /whole numbers >= 1; row 0 has 0/);
  const cache = base.newCache(8);
  try {
    assert.throws(() => base.run({ inputIds: ids, segmentLengths: [[4]], caches: [cache] }), /cannot be combined with KV caches/);
  } finally {
    cache.dispose();
  }
});

test('the Trainer trains packed rows as it trains their examples: same losses and adapter, with checkpointing too', async () => {
  const examples = await reversalExamples(12);
  const rows = packExamples(examples, 24);
  assert.ok(rows.length <= 6, `${rows.length} rows`);
  const run = async (train: TokenizedExample[], checkpointing: boolean) => {
    const peft = await freshPeft({ loraDropout: 0 });
    if (checkpointing) enableGradientCheckpointing(peft.model);
    const args = testArgs(await tempDir(), { maxSteps: 3, batchSize: train.length, gradAccum: 1, shuffle: false, maxGradNorm: 0, lrScheduler: 'constant', warmupSteps: 0, gradientCheckpointing: checkpointing });
    const result = await new Trainer({ model: peft, args, train, padId: 0 }).train();
    const params = new Map<string, Float32Array>();
    for (const [k, t] of peft.trainableParameters()) params.set(k, await t.data());
    return { losses: result.state.logHistory.filter((e) => 'loss' in e).map((e) => e['loss'] as number), params };
  };
  const plain = await run(examples, false);
  for (const checkpointing of [false, true]) {
    const packed = await run(rows, checkpointing);
    assertClose(packed.losses, plain.losses, 1e-5, `losses (checkpointing ${checkpointing})`);
    for (const [k, v] of plain.params) assertClose(packed.params.get(k)!, v, 1e-5, `${k} (checkpointing ${checkpointing})`);
  }
});
