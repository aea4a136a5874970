/**
 * The fused, chunked output projection + cross-entropy (ops.linearCrossEntropy, CausalLM.runLoss) against the
 * composed crossEntropy(linear(h, W)) on the device that LORAFORGE_TEST_DEVICE selects: the loss and the gradients
 * of h and of a trainable W, over several chunks, ignored labels, and Gemma 2's final-logit soft-cap; then whole
 * models, whose runLoss must give run()'s loss and the same LoRA gradients.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AutoModelForCausalLM } from '../../src/index.js';
import * as ops from '../../src/ops/index.js';
import { getPeftModel } from '../../src/peft/index.js';
import type { DType } from '../../src/tensor/dtype.js';
import { scopeAsync } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';
import { fixturePath } from '../helpers/fixtures.js';
import { assertClose, maxAbsDiff, seededValues } from '../helpers/numeric.js';

await prepareTestDevice();

interface Case {
  readonly name: string;
  readonly rows: number;
  readonly hidden: number;
  readonly vocab: number;
  readonly chunkRows?: number;
  readonly softcap?: number;
  readonly trainableWeight?: boolean;
}

const CASES: readonly Case[] = [
  { name: 'one chunk', rows: 12, hidden: 16, vocab: 50 },
  { name: 'four chunks with a partial last one', rows: 23, hidden: 16, vocab: 70, chunkRows: 6 },
  { name: 'chunks of one row, soft-cap 3', rows: 9, hidden: 8, vocab: 40, chunkRows: 1, softcap: 3 },
  { name: 'trainable weight over three chunks, soft-cap 2', rows: 17, hidden: 12, vocab: 33, chunkRows: 7, softcap: 2, trainableWeight: true },
];

/** Labels with every fourth position ignored (-100). */
function labelsFor(rows: number, vocab: number): Tensor {
  const l = Int32Array.from({ length: rows }, (_, i) => (i % 4 === 3 ? -100 : (i * 7 + 3) % vocab));
  return ops.tensor(l, [rows], { dtype: 'int32', device: TEST_DEVICE });
}

async function run(c: Case, dtype: DType, fused: boolean): Promise<{ loss: number; dh: Float32Array; dw: Float32Array | null }> {
  return scopeAsync(async () => {
    const h = ops.tensor(seededValues(c.rows * c.hidden, 3, 2), [c.rows, c.hidden], { dtype, device: TEST_DEVICE, requiresGrad: true });
    const w = ops.tensor(seededValues(c.vocab * c.hidden, 5, 1), [c.vocab, c.hidden], { dtype, device: TEST_DEVICE, requiresGrad: c.trainableWeight ?? false });
    const labels = labelsFor(c.rows, c.vocab);
    let loss: Tensor;
    if (fused) {
      loss = ops.linearCrossEntropy(h, w, labels, { softcap: c.softcap, chunkRows: c.chunkRows });
    } else {
      let z = ops.linear(h, w);
      if (c.softcap) z = ops.mulScalar(ops.tanh(ops.div(z, ops.full([], c.softcap, { dtype, device: TEST_DEVICE }))), c.softcap);
      loss = ops.crossEntropy(z, labels);
    }
    // A loss gradient other than 1, so that the kept gradients' scaling is checked too.
    await ops.mulScalar(loss, 0.75).backward();
    return { loss: await loss.item(), dh: (await h.grad!.data()) as Float32Array, dw: w.requiresGrad ? ((await w.grad!.data()) as Float32Array) : null };
  });
}

for (const c of CASES) {
  test(`float32 ${c.name}: the fused loss and gradients match the composition`, async () => {
    const fused = await run(c, 'float32', true);
    const ref = await run(c, 'float32', false);
    assert.ok(Math.abs(fused.loss - ref.loss) <= 1e-6 * Math.max(1, Math.abs(ref.loss)), `loss ${fused.loss} vs ${ref.loss}`);
    assertClose(fused.dh, ref.dh, 1e-5, 'dh');
    if (c.trainableWeight) assertClose(fused.dw!, ref.dw!, 1e-5, 'dw');
    else assert.equal(fused.dw, null);
  });
}

test('bfloat16: the fused loss and gradients match the composition within bf16 rounding', async () => {
  const c = CASES[3]!;
  const fused = await run(c, 'bfloat16', true);
  const ref = await run(c, 'bfloat16', false);
  assert.ok(Math.abs(fused.loss - ref.loss) <= 1e-2 * Math.abs(ref.loss), `loss ${fused.loss} vs ${ref.loss}`);
  for (const [a, b, what] of [[fused.dh, ref.dh, 'dh'], [fused.dw!, ref.dw!, 'dw']] as const) {
    const { diff, scale } = maxAbsDiff(a, b);
    assert.ok(diff <= 3e-2 * scale, `${what}: max abs diff ${diff} exceeds 3e-2 x ${scale}`);
  }
});

test('no targets at all give NaN, as the composed loss does; shapes that do not fit are refused', async () => {
  const h = ops.tensor(seededValues(8, 1), [2, 4], { device: TEST_DEVICE });
  const w = ops.tensor(seededValues(12, 2), [3, 4], { device: TEST_DEVICE });
  const none = ops.tensor(Int32Array.from([-100, -100]), [2], { dtype: 'int32', device: TEST_DEVICE });
  assert.ok(Number.isNaN(await ops.linearCrossEntropy(h, w, none).item()));
  assert.throws(() => ops.linearCrossEntropy(h, ops.zeros([3, 5], { device: TEST_DEVICE }), none), /linearCrossEntropy needs h \[rows, hidden\], weight \[vocab, hidden\] and labels \[rows\]/);
});

// Whole models: tied embeddings (tiny-llama), a separate lm_head (tiny-qwen3), the final-logit soft-cap (tiny-gemma2).
for (const name of ['tiny-llama', 'tiny-qwen3', 'tiny-gemma2']) {
  test(`${name}: runLoss gives run()'s loss and the same LoRA gradients without the logits`, async () => {
    const model = await AutoModelForCausalLM.fromPretrained(fixturePath(name), { dtype: 'float32', device: TEST_DEVICE });
    const peft = getPeftModel(model, { r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'], initLoraWeights: false });
    const inputIds = [[1, 5, 9, 14, 3, 7, 22, 8], [4, 4, 18, 2, 11, 6, 30, 12]];
    const labels = [[-100, 5, 9, 14, 3, 7, 22, 8], [-100, -100, 18, 2, 11, 6, 30, 12]];
    const grads = async (fused: boolean) =>
      scopeAsync(async () => {
        const loss = fused ? peft.runLoss({ inputIds, labels }) : peft.run({ inputIds, labels }).loss!;
        await loss.backward();
        const out = { loss: await loss.item(), grads: new Map<string, Float32Array>() };
        for (const [key, p] of peft.trainableParameters()) {
          out.grads.set(key, (await p.grad!.data()) as Float32Array);
          p.grad = null;
        }
        return out;
      });
    const fused = await grads(true);
    const ref = await grads(false);
    assert.ok(Math.abs(fused.loss - ref.loss) <= 1e-6 * Math.abs(ref.loss), `loss ${fused.loss} vs ${ref.loss}`);
    assert.ok(ref.grads.size > 0);
    for (const [key, g] of ref.grads) assertClose(fused.grads.get(key)!, g, 1e-5, key);
  });
}
