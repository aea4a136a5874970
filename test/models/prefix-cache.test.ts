/**
 * Automatic prefix caching in the paged KV pool: the block table (chained hashes, reference counts, eviction of
 * cached blocks least recently released first, the pool's block limit, namespaces that keep adapters apart), and
 * real models prefilling a prompt whose first blocks another sequence published: the shared blocks are not
 * computed again and the logits are the bits of a cold prefill (batch-invariant mode, paged prefill).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AutoModelForCausalLM, type CausalLM } from '../../src/index.js';
import { gemmInfo } from '../../src/backend/cpu/gemm.js';
import { getBackend } from '../../src/backend/registry.js';
import { KvBlockTable, KvPoolFullError, prefixBlockHashes } from '../../src/models/kv-blocks.js';
import { KvCache, KvPool, KV_BLOCK_SIZE, type KvPrefix } from '../../src/models/kv-cache.js';
import { noGradAsync } from '../../src/tensor/grad-mode.js';
import { Rng } from '../../src/tensor/random.js';
import { fixturePath } from '../helpers/fixtures.js';
import { TEST_DEVICE, prepareTestDevice } from '../helpers/device.js';

await prepareTestDevice();

function tokens(n: number, seed: number, vocab = 384): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => rng.int(vocab));
}

test('prefix hashes chain: block i depends on every earlier token and on the namespace', () => {
  const a = tokens(64, 1);
  const h = prefixBlockHashes('base', a, 4, 16);
  assert.equal(h.length, 4);
  assert.equal(new Set(h).size, 4);
  assert.deepEqual(prefixBlockHashes('base', a, 4, 16), h, 'deterministic');
  // A change in block 0 changes every later hash; a change in block 2 leaves blocks 0 and 1.
  const b = [...a];
  b[3] = (b[3]! + 1) % 384;
  const hb = prefixBlockHashes('base', b, 4, 16);
  for (let i = 0; i < 4; i++) assert.notEqual(hb[i], h[i], `block ${i} after a change in block 0`);
  const c = [...a];
  c[40] = (c[40]! + 1) % 384;
  const hc = prefixBlockHashes('base', c, 4, 16);
  assert.deepEqual(hc.slice(0, 2), h.slice(0, 2));
  assert.notEqual(hc[2], h[2]);
  assert.notEqual(hc[3], h[3]);
  // The same tokens under another namespace share nothing, and block 1's tokens alone are not block 1.
  const other = prefixBlockHashes('adapter#1', a, 4, 16);
  for (let i = 0; i < 4; i++) assert.notEqual(other[i], h[i]);
  assert.notEqual(prefixBlockHashes('base', a.slice(16), 1, 16)[0], h[1]);
  assert.throws(() => prefixBlockHashes('base', a, 5, 16), /5 blocks of 16 tokens need 80 tokens; 64 were given/);
});

test('the block table shares published blocks by reference count and frees them only at zero', () => {
  const t = new KvBlockTable();
  t.addBlocks(8);
  const a = t.take(3);
  assert.deepEqual(a, [0, 1, 2]);
  t.publish(a[0]!, 'h0');
  t.publish(a[1]!, 'h1');
  assert.deepEqual(t.share(['h0', 'h1', 'h2']), [0, 1], 'the longest published run');
  assert.deepEqual(t.share(['h2']), [], 'an unpublished hash shares nothing');
  assert.deepEqual([t.refCount(0), t.refCount(1), t.refCount(2)], [2, 2, 1]);
  t.release(a);
  assert.deepEqual([t.refCount(0), t.refCount(1), t.refCount(2)], [1, 1, 0]);
  assert.equal(t.unreferenced, 6, 'block 2 is free again; 0 and 1 are still held');
  t.release([0, 1]);
  assert.equal(t.unreferenced, 8);
  assert.equal(t.cachedBlocks, 2, 'released published blocks stay cached');
  assert.deepEqual(t.share(['h0', 'h1']), [0, 1], 'and serve a later sequence');
  t.release([0, 1]);
  assert.throws(() => t.release([0]), /released more often than it was taken/);
  assert.throws(() => t.publish(5, 'h5'), /not referenced/);
  // A hash another block holds keeps that block: the duplicate stays private and is freed, not cached.
  const [dup] = t.take(1);
  t.publish(dup!, 'h0');
  t.release([dup!]);
  assert.equal(t.cachedBlocks, 2);
  assert.deepEqual(t.share(['h0']), [0]);
  t.release([0]);
});

test('the block table evicts cached blocks least recently released first, never referenced ones, and grows only when both run out', () => {
  const t = new KvBlockTable(6);
  t.addBlocks(4);
  const a = t.take(2);
  const b = t.take(2);
  a.forEach((blk, i) => t.publish(blk, `a${i}`));
  b.forEach((blk, i) => t.publish(blk, `b${i}`));
  t.release(b);
  t.release(a);
  assert.equal(t.shortfall(4), 0, 'cached blocks count as available');
  // b was released first, and within a sequence its last block goes first: b1, then b0.
  const held = t.share(['a0']);
  assert.deepEqual(held, [a[0]]);
  assert.deepEqual(t.take(2), [b[1], b[0]]);
  assert.deepEqual(t.share(['b0']), [], 'evicted blocks no longer serve their prefix');
  assert.deepEqual(t.take(1), [a[1]]);
  assert.equal(t.unreferenced, 0);
  assert.equal(t.refCount(a[0]!), 1, 'the shared block was never evicted');
  assert.equal(t.shortfall(2), 2, 'the storage must grow by 2 blocks');
  assert.throws(() => t.shortfall(3), (e: unknown) => e instanceof KvPoolFullError && /has 2 of its 6 blocks free and 3 were needed/.test(e.message));
  assert.throws(() => t.take(1), /needs the pool to grow first/);
  assert.throws(() => new KvBlockTable(0), /positive whole number/);
});

test('a KV pool at its block limit refuses a reservation it cannot hold, and keeps what it has', () => {
  const pool = new KvPool(1, 1, 8, 'float32', TEST_DEVICE, { maxBlocks: 4 });
  try {
    const a = new KvCache(pool, 3 * KV_BLOCK_SIZE);
    assert.equal(pool.capacity, 4, 'growth stops at the limit');
    assert.throws(() => new KvCache(pool, 2 * KV_BLOCK_SIZE), KvPoolFullError);
    assert.equal(pool.freeBlocks, 1, 'a refused reservation takes nothing');
    // A refused cache gives back the prefix blocks it had shared.
    const prefix: KvPrefix = { namespace: 'base', tokens: tokens(40, 3) };
    a.length = 40;
    new KvCache(pool, 1, prefix).dispose();
    const owner = new KvCache(pool, 1 * KV_BLOCK_SIZE);
    owner.dispose();
    a.dispose();
    assert.equal(pool.freeBlocks, 4);
  } finally {
    pool.dispose();
  }
});

test('a cache shares at most floor((L - 1) / 16) published blocks of an L-token prompt, and only in its namespace', () => {
  const pool = new KvPool(1, 1, 8, 'float32', TEST_DEVICE);
  try {
    const prompt = tokens(48, 4);
    const first = new KvCache(pool, 60, { namespace: 'base', tokens: prompt });
    assert.equal(first.cachedTokens, 0);
    first.length = 48;
    first.publish();
    assert.equal(pool.cachedBlocks, 3);
    // 48 tokens: 2 blocks shared, the third is computed again so the last token has logits.
    const same = new KvCache(pool, 60, { namespace: 'base', tokens: prompt });
    assert.equal(same.cachedTokens, 32);
    assert.equal(same.length, 32);
    assert.deepEqual(same.blocks.slice(0, 2), first.blocks.slice(0, 2));
    assert.notEqual(same.blocks[2], first.blocks[2]);
    const longer = new KvCache(pool, 80, { namespace: 'base', tokens: [...prompt, ...tokens(5, 5)] });
    assert.equal(longer.cachedTokens, 48);
    const adapter = new KvCache(pool, 60, { namespace: 'adapter-a#1', tokens: prompt });
    assert.equal(adapter.cachedTokens, 0, "the base's blocks never serve an adapter");
    adapter.length = 48;
    adapter.publish();
    const otherAdapter = new KvCache(pool, 60, { namespace: 'adapter-b#2', tokens: prompt });
    assert.equal(otherAdapter.cachedTokens, 0, "nor one adapter's another's");
    const sameAdapter = new KvCache(pool, 60, { namespace: 'adapter-a#1', tokens: prompt });
    assert.equal(sameAdapter.cachedTokens, 32);
    assert.deepEqual(sameAdapter.blocks.slice(0, 2), adapter.blocks.slice(0, 2));
    // Published blocks are never written again: the sharers' own positions start after them.
    assert.equal(pool.refCount(first.blocks[0]!), 3);
    for (const c of [first, same, longer, adapter, otherAdapter, sameAdapter]) c.dispose();
    assert.equal(pool.freeBlocks, pool.capacity);
  } finally {
    pool.dispose();
  }
});

/**
 * Prefills `prompt` into a new cache (sharing what the pool has published) the way the scheduler does with prefix
 * caching, then decodes `steps` greedy tokens and publishes the prompt's and those tokens' full blocks, as a
 * finished sequence does; returns the cached positions, every step's logits and the tokens.
 */
interface Decoded {
  readonly cached: number;
  readonly logits: Float32Array[];
  readonly tokens: number[];
}

async function prefillAndDecode(model: CausalLM, namespace: string, prompt: readonly number[], steps: number, adapter = '__base__'): Promise<Decoded> {
  const backend = getBackend(model.device);
  const invariant = <T>(fn: () => T): T => (backend.batchInvariant ? backend.batchInvariant(fn) : fn());
  const cache = model.newCache(prompt.length + steps, { namespace, tokens: prompt });
  try {
    return await noGradAsync(async () => {
      const logits: Float32Array[] = [];
      const tokens: number[] = [];
      let out = invariant(() => model.run({ inputIds: [prompt.slice(cache.cachedTokens)], caches: [cache], lastTokenOnly: true, pagedPrefill: true, adapterNames: [adapter] }));
      cache.publish();
      for (let s = 0; s < steps; s++) {
        const row = await out.logits.data();
        logits.push(Float32Array.from(row));
        let best = 0;
        for (let v = 1; v < row.length; v++) if (row[v]! > row[best]!) best = v;
        tokens.push(best);
        if (s + 1 < steps) out = invariant(() => model.run({ inputIds: [[best]], caches: [cache], lastTokenOnly: true, adapterNames: [adapter] }));
      }
      cache.publish([...prompt, ...tokens]);
      return { cached: cache.cachedTokens, logits, tokens };
    });
  } finally {
    cache.dispose();
  }
}

for (const [name, dtype] of [['tiny-llama', 'float32'], ['tiny-llama', 'bfloat16'], ['tiny-gemma2', 'float32']] as const) {
  test(`${name} (${dtype}): a prompt over published prefix blocks gives the bits of a cold prefill`, async () => {
    const cold = await AutoModelForCausalLM.fromPretrained(fixturePath(name), { dtype, device: TEST_DEVICE });
    const warm = await AutoModelForCausalLM.fromPretrained(fixturePath(name), { dtype, device: TEST_DEVICE });
    const system = tokens(70, 11);
    const prompts = [[...system, ...tokens(9, 12)], [...system, ...tokens(30, 13)], system.slice(0, 64), [...system.slice(0, 20), ...tokens(10, 14)]];
    try {
      // Each cold run gets a pool of its own, so nothing is shared; the warm model keeps one pool for all prompts.
      const expected: Decoded[] = [];
      for (const p of prompts) {
        expected.push(await prefillAndDecode(cold, 'base', p, 3));
        cold.releaseKvPool();
      }
      const got: Decoded[] = [];
      for (const p of prompts) got.push(await prefillAndDecode(warm, 'base', p, 3));
      // A next turn: the first prompt, its answer and more. Its 80 positions written by prefill and decode steps
      // are shared, one block more than the prompt alone published.
      const turn = [...prompts[0]!, ...got[0]!.tokens, ...tokens(7, 15)];
      prompts.push(turn);
      expected.push(await prefillAndDecode(cold, 'base', turn, 3));
      cold.releaseKvPool();
      got.push(await prefillAndDecode(warm, 'base', turn, 3));
      assert.deepEqual(expected.map((r) => r.cached), [0, 0, 0, 0, 0]);
      // The first publishes 4 blocks of the system prompt; the second shares them, the 64-token third shares 3
      // (its last block is computed for its logits), the fourth 1 (20 tokens in common).
      assert.deepEqual(got.map((r) => r.cached), [0, 64, 48, 16, 80]);
      got.forEach((r, i) => assert.deepEqual(r.logits, expected[i]!.logits, `prompt ${i}: warm logits equal the cold ones`));
      // A dense prefill (cache off) of the same prompt gives the same bits where the GEMM is the built-in one
      // (OpenBLAS computes a row by its place in the batch, which only the batch-invariant mode avoids).
      if (TEST_DEVICE === 'cpu' && gemmInfo().implementation !== 'openblas') {
        const dense = await noGradAsync(() => cold.run({ inputIds: [prompts[1]!], lastTokenOnly: true }).logits.data());
        assert.deepEqual(dense, expected[1]!.logits[0]);
      }
    } finally {
      warm.releaseKvPool();
      cold.releaseKvPool();
    }
  });
}
