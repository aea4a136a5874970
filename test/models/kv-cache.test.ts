/**
 * The paged KV cache on the device that LORAFORGE_TEST_DEVICE selects: pagedAttention against the dense reference
 * over shuffled, non-contiguous blocks; incremental decoding against full forwards of tiny-llama; a row's decode
 * logits alone and inside a batch of other rows (bit-identical under the backend's batch-invariant mode); the
 * sliding window and logit soft-cap over the paged cache against the dense reference, decoding past the window; pool
 * growth, block reuse and the errors a caller can hit.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AutoModelForCausalLM } from '../../src/index.js';
import { getBackend } from '../../src/backend/registry.js';
import { KvCache, KvPool, KV_BLOCK_SIZE, pagedKvStep } from '../../src/models/kv-cache.js';
import * as ops from '../../src/ops/index.js';
import { noGrad } from '../../src/tensor/grad-mode.js';
import type { DType } from '../../src/tensor/dtype.js';
import { fixturePath } from '../helpers/fixtures.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';
import { assertClose, seededValues } from '../helpers/numeric.js';

await prepareTestDevice();

interface Geometry {
  readonly H: number;
  readonly Hkv: number;
  readonly D: number;
  /** Positions each row holds before the step. */
  readonly before: readonly number[];
  /** New positions per row in the step. */
  readonly T: number;
  /** Sliding window and logit soft-cap, given to both sides. */
  readonly extra?: ops.AttentionExtras;
}

/**
 * Writes every row's history and step into a pool whose blocks were handed out in shuffled order (another
 * sequence's blocks sit between them), then compares the step's paged attention with the dense reference.
 */
async function pagedAgainstDense(g: Geometry, dtype: DType, tol: number): Promise<void> {
  const device = TEST_DEVICE;
  const B = g.before.length;
  const pool = new KvPool(1, g.Hkv, g.D, dtype, device);
  const filler = new KvCache(pool, 3 * KV_BLOCK_SIZE);
  const caches = g.before.map((n) => new KvCache(pool, n + g.T + 5));
  filler.dispose();
  const spacer = new KvCache(pool, 2 * KV_BLOCK_SIZE);
  try {
    const scale = 1 / Math.sqrt(g.D);
    for (let b = 0; b < B; b++) {
      const total = g.before[b]! + g.T;
      const k = ops.tensor(seededValues(g.Hkv * total * g.D, 11 + b), [1, g.Hkv, total, g.D], { dtype, device });
      const v = ops.tensor(seededValues(g.Hkv * total * g.D, 23 + b), [1, g.Hkv, total, g.D], { dtype, device });
      const q = ops.tensor(seededValues(g.H * g.T * g.D, 37 + b), [1, g.H, g.T, g.D], { dtype, device });
      // History in one write, then the step's positions in a second, as decoding does.
      const cache = caches[b]!;
      if (g.before[b]! > 0) {
        ops.pagedKvWrite(pool.keys[0]!, pool.values[0]!, ops.narrow(k, 2, 0, g.before[b]!), ops.narrow(v, 2, 0, g.before[b]!), pagedKvStep([cache], g.before[b]!, device));
        cache.advance(g.before[b]!);
      }
      const step = pagedKvStep([cache], g.T, device);
      ops.pagedKvWrite(pool.keys[0]!, pool.values[0]!, ops.narrow(k, 2, g.before[b]!, g.T), ops.narrow(v, 2, g.before[b]!, g.T), step);
      const paged = await ops.pagedAttention(q, pool.keys[0]!, pool.values[0]!, step, scale, g.extra).data();
      const dense = await ops.attentionReference(ops.to(q, { dtype: 'float32' }), ops.to(k, { dtype: 'float32' }), ops.to(v, { dtype: 'float32' }), scale, null, true, g.extra).data();
      assertClose(paged, dense, tol, `row ${b} (${g.before[b]} cached + ${g.T} new, ${dtype}, ${JSON.stringify(g.extra ?? {})})`);
    }
  } finally {
    for (const c of [...caches, spacer]) c.dispose();
    pool.dispose();
  }
}

test('pagedAttention matches dense causal attention over shuffled blocks (float32)', async () => {
  await pagedAgainstDense({ H: 4, Hkv: 2, D: 16, before: [0, 5, 37, 16], T: 1 }, 'float32', 1e-5);
  await pagedAgainstDense({ H: 4, Hkv: 1, D: 64, before: [3, 40], T: 3 }, 'float32', 1e-5);
  await pagedAgainstDense({ H: 2, Hkv: 2, D: 128, before: [130], T: 1 }, 'float32', 1e-5);
  await pagedAgainstDense({ H: 2, Hkv: 1, D: 40, before: [0], T: 21 }, 'float32', 1e-5);
});

test('pagedAttention matches dense attention in bfloat16 within storage rounding', async () => {
  await pagedAgainstDense({ H: 8, Hkv: 2, D: 64, before: [0, 17, 63], T: 1 }, 'bfloat16', 2e-2);
});

test('pagedAttention with a sliding window and soft-cap matches the dense reference on decode steps past the window (float32)', async () => {
  // Rows shorter than, equal to and far past the window; one-position decode steps and a 3-position step.
  await pagedAgainstDense({ H: 4, Hkv: 2, D: 16, before: [0, 5, 16, 37, 130], T: 1, extra: { window: 16 } }, 'float32', 1e-5);
  await pagedAgainstDense({ H: 4, Hkv: 1, D: 64, before: [3, 40, 200], T: 3, extra: { window: 20, softcap: 1.5 } }, 'float32', 1e-5);
  await pagedAgainstDense({ H: 2, Hkv: 2, D: 128, before: [0, 130], T: 1, extra: { softcap: 1 } }, 'float32', 1e-5);
  await pagedAgainstDense({ H: 2, Hkv: 1, D: 40, before: [0, 9], T: 21, extra: { window: 7, softcap: 2 } }, 'float32', 1e-5);
  await pagedAgainstDense({ H: 2, Hkv: 1, D: 32, before: [50], T: 1, extra: { window: 1000 } }, 'float32', 1e-5);
  await pagedAgainstDense({ H: 2, Hkv: 1, D: 32, before: [300], T: 1, extra: { window: 1 } }, 'float32', 1e-5);
});

test('pagedAttention with a sliding window and soft-cap matches dense attention in bfloat16 within storage rounding', async () => {
  await pagedAgainstDense({ H: 8, Hkv: 2, D: 64, before: [0, 17, 63, 170], T: 1, extra: { window: 24, softcap: 2 } }, 'bfloat16', 2e-2);
});

test('pagedAttention with attention sinks (gpt-oss) matches the dense reference, alone and with a window (float32 and bfloat16)', async () => {
  // Sinks of either sign and up to 3 in size, so that in some rows the sink outweighs every key.
  const sinks = (H: number) => ops.tensor(seededValues(H, 41, 3), [H], { device: TEST_DEVICE });
  await pagedAgainstDense({ H: 4, Hkv: 2, D: 64, before: [0, 5, 40, 130], T: 1, extra: { sinks: sinks(4) } }, 'float32', 1e-5);
  await pagedAgainstDense({ H: 8, Hkv: 1, D: 64, before: [3, 200], T: 3, extra: { sinks: sinks(8), window: 128 } }, 'float32', 1e-5);
  await pagedAgainstDense({ H: 8, Hkv: 2, D: 64, before: [0, 17, 170], T: 1, extra: { sinks: sinks(8), window: 24 } }, 'bfloat16', 2e-2);
});

test('pagedAttention refuses a negative window and an infinite softcap', () => {
  const device = TEST_DEVICE;
  const pool = new KvPool(1, 1, 16, 'float32', device);
  const cache = new KvCache(pool, 4);
  try {
    const step = pagedKvStep([cache], 1, device);
    const q = ops.zeros([1, 1, 1, 16], { device });
    for (const extra of [{ window: -3 }, { softcap: Number.POSITIVE_INFINITY }]) {
      assert.throws(() => ops.pagedAttention(q, pool.keys[0]!, pool.values[0]!, step, 0.25, extra), /window must be a whole number >= 0 and its softcap a finite number >= 0/);
    }
  } finally {
    cache.dispose();
    pool.dispose();
  }
});

test('a batched paged step writes and reads every row at its own position', async () => {
  const device = TEST_DEVICE;
  const [H, Hkv, D] = [4, 2, 16];
  const before = [7, 0, 33];
  const pool = new KvPool(1, Hkv, D, 'float32', device);
  const caches = before.map((n) => new KvCache(pool, n + 1));
  try {
    const all = before.map((n, b) => ({
      k: ops.tensor(seededValues(Hkv * (n + 1) * D, 100 + b), [1, Hkv, n + 1, D], { device }),
      v: ops.tensor(seededValues(Hkv * (n + 1) * D, 200 + b), [1, Hkv, n + 1, D], { device }),
      q: ops.tensor(seededValues(H * D, 300 + b), [1, H, 1, D], { device }),
    }));
    before.forEach((n, b) => {
      if (n === 0) return;
      ops.pagedKvWrite(pool.keys[0]!, pool.values[0]!, ops.narrow(all[b]!.k, 2, 0, n), ops.narrow(all[b]!.v, 2, 0, n), pagedKvStep([caches[b]!], n, device));
      caches[b]!.advance(n);
    });
    const step = pagedKvStep(caches, 1, device);
    const last = (name: 'k' | 'v') => ops.cat(all.map((r, b) => ops.narrow(r[name], 2, before[b]!, 1)), 0);
    ops.pagedKvWrite(pool.keys[0]!, pool.values[0]!, last('k'), last('v'), step);
    const out = await ops.pagedAttention(ops.cat(all.map((r) => r.q), 0), pool.keys[0]!, pool.values[0]!, step, 0.25).data();
    for (let b = 0; b < before.length; b++) {
      const dense = await ops.attentionReference(all[b]!.q, all[b]!.k, all[b]!.v, 0.25, null, true).data();
      assertClose(out.subarray(b * H * D, (b + 1) * H * D), dense, 1e-5, `row ${b}`);
    }
  } finally {
    for (const c of caches) c.dispose();
    pool.dispose();
  }
});

test('tiny-llama: incremental decoding over the paged cache equals full forwards', async () => {
  const model = await AutoModelForCausalLM.fromPretrained(fixturePath('tiny-llama'), { dtype: 'float32', device: TEST_DEVICE });
  const ids = Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % model.config.vocabSize);
  const cache = model.newCache(ids.length);
  try {
    await noGrad(async () => {
      // Prefill 21 positions (more than one block), then one position at a time across two block boundaries.
      const prefill = await model.run({ inputIds: [ids.slice(0, 21)], caches: [cache], lastTokenOnly: true }).logits.data();
      const full21 = model.run({ inputIds: [ids.slice(0, 21)], lastTokenOnly: true }).logits;
      assertClose(prefill, await full21.data(), 1e-5, 'prefill logits');
      for (let t = 21; t < ids.length; t++) {
        const step = await model.run({ inputIds: [[ids[t]!]], caches: [cache], lastTokenOnly: true }).logits.data();
        const full = await model.run({ inputIds: [ids.slice(0, t + 1)], lastTokenOnly: true }).logits.data();
        assertClose(step, full, 1e-5, `decode logits at position ${t}`);
      }
    });
  } finally {
    cache.dispose();
  }
});

test('tiny-llama: a row decodes to the same bits alone and inside a batch of other rows', async () => {
  const model = await AutoModelForCausalLM.fromPretrained(fixturePath('tiny-llama'), { dtype: 'float32', device: TEST_DEVICE });
  const backend = getBackend(model.device);
  const invariant = <T>(fn: () => T): T => (backend.batchInvariant ? backend.batchInvariant(fn) : fn());
  const prompts = [
    [5, 9, 200, 31, 7],
    Array.from({ length: 37 }, (_, i) => (i * 13 + 3) % 384),
    [17],
    Array.from({ length: 16 }, (_, i) => (i * 7 + 1) % 384),
  ];
  const alone = await decodeRowAt(0, [0]);
  // Row 0 first in a batch with three others of different lengths; then last.
  const first = await decodeRowAt(0, [0, 1, 2, 3]);
  const last = await decodeRowAt(3, [1, 2, 3, 0]);
  for (let step = 0; step < 3; step++) {
    if (backend.batchInvariant) {
      assert.deepEqual(first[step], alone[step], `step ${step}: row first in a batch of 4`);
      assert.deepEqual(last[step], alone[step], `step ${step}: row last in a batch of 4`);
    } else {
      assertClose(first[step]!, alone[step]!, 1e-5, `step ${step}`);
      assertClose(last[step]!, alone[step]!, 1e-5, `step ${step}`);
    }
  }

  async function decodeRowAt(index: number, rows: number[]): Promise<Float32Array[]> {
    return noGrad(async () => {
      const caches = rows.map((r) => model.newCache(prompts[r]!.length + 4));
      try {
        for (const [i, r] of rows.entries()) model.run({ inputIds: [prompts[r]!], caches: [caches[i]!], lastTokenOnly: true });
        const out: Float32Array[] = [];
        const V = model.config.vocabSize;
        for (let step = 0; step < 3; step++) {
          const logits = await invariant(() => model.run({ inputIds: rows.map((r) => [(r * 5 + step) % 384]), caches, lastTokenOnly: true })).logits.data();
          out.push(logits.slice(index * V, (index + 1) * V));
        }
        return out;
      } finally {
        for (const c of caches) c.dispose();
      }
    });
  }
});

test('the pool grows by doubling, keeps stored positions, and reuses released blocks', async () => {
  const device = TEST_DEVICE;
  const pool = new KvPool(2, 1, 8, 'float32', device);
  const a = new KvCache(pool, 10 * KV_BLOCK_SIZE);
  assert.equal(pool.capacity, 64);
  const k = ops.tensor(seededValues(8 * 20, 5), [1, 1, 20, 8], { device });
  ops.pagedKvWrite(pool.keys[1]!, pool.values[1]!, k, k, pagedKvStep([a], 20, device));
  a.advance(20);
  const before = await pool.keys[1]!.data();
  const b = new KvCache(pool, 60 * KV_BLOCK_SIZE);
  assert.equal(pool.capacity, 128);
  const after = await pool.keys[1]!.data();
  assert.deepEqual(after.subarray(0, before.length), before, 'stored positions survive growth');
  const ids = [...b.blocks];
  b.dispose();
  const c = new KvCache(pool, 60 * KV_BLOCK_SIZE);
  assert.deepEqual(c.blocks, ids, 'released blocks are handed out again');
  assert.equal(new Set([...a.blocks, ...c.blocks]).size, a.blocks.length + c.blocks.length, 'no block is shared');
  a.dispose();
  c.dispose();
  assert.equal(pool.freeBlocks, pool.capacity);
  pool.dispose();
});

test('KV cache errors name the problem', async () => {
  const model = await AutoModelForCausalLM.fromPretrained(fixturePath('tiny-llama'), { dtype: 'float32', device: TEST_DEVICE });
  const other = await AutoModelForCausalLM.fromPretrained(fixturePath('tiny-llama'), { dtype: 'float32', device: TEST_DEVICE });
  const small = model.newCache(4);
  const foreign = other.newCache(4);
  try {
    assert.throws(() => noGrad(() => model.run({ inputIds: [[1, 2, 3, 4, 5]], caches: [small] })), /holds 4 positions and 5 were needed/);
    assert.throws(() => noGrad(() => model.run({ inputIds: [[1], [2]], caches: [small, foreign] })), /same model/);
    assert.throws(() => model.newCache(0), /positive whole number/);
    assert.throws(() => model.releaseKvPool(), /still in use/);
  } finally {
    small.dispose();
    foreign.dispose();
  }
  model.releaseKvPool();
  assert.throws(() => small.blocks, /disposed/);
});
