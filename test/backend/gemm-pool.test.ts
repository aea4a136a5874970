import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { GemmPool } from '../../src/backend/cpu/gemm-pool.js';
import { GemmWorkspace } from '../../src/backend/cpu/gemm-kernel.js';
import type { SgemmArgs } from '../../src/backend/cpu/gemm.js';
import { makeProblem } from '../helpers/gemm-reference.js';

setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;

/** Live heap bytes after a full collection and a turn for finalization callbacks. */
async function liveHeap(): Promise<number> {
  collect();
  await new Promise((r) => setImmediate(r));
  collect();
  return process.memoryUsage().heapUsed;
}

describe('GemmPool: long-lived operands cycling through its 64 worker slots', () => {
  it('keeps the heap flat when the same 100 buffers are evicted and sent again 200 times each', async () => {
    const pool = new GemmPool(2);
    const ws = new GemmWorkspace();
    const n = 4;
    // More long-lived buffers than slots (a served model's weights and pooled activations), so every pass evicts.
    const operands = Array.from({ length: 100 }, () => new Float32Array(new SharedArrayBuffer(n * n * 4)).fill(1));
    const c = new Float32Array(new SharedArrayBuffer(n * n * 4));
    const pass = () => {
      for (let i = 0; i < operands.length; i += 2) {
        const args = { m: n, n, k: n, transA: false, transB: false, a: operands[i]!, aOffset: 0, lda: n, b: operands[i + 1]!, bOffset: 0, ldb: n, c, cOffset: 0, ldc: n, alpha: 1, beta: 0, batch: 1, strideA: 0, strideB: 0, strideC: 0 };
        assert.equal(pool.run(args, ws), true);
      }
    };
    try {
      for (let p = 0; p < 10; p++) pass();
      const before = await liveHeap();
      for (let p = 0; p < 200; p++) pass();
      const grown = (await liveHeap()) - before;
      assert.deepEqual([...c], new Array(n * n).fill(n));
      assert.ok(grown < 256 * 1024, `the heap grew by ${(grown / 1024).toFixed(0)} KiB over 20,000 sends of 100 buffers`);
    } finally {
      await pool.close();
    }
  });
});

describe('GemmPool: many jobs from several pools', () => {
  it('gives 3,000 GEMMs of varied shapes from pools created and dropped the bits one workspace gives', async () => {
    const ws = new GemmWorkspace();
    const pools = [new GemmPool(2), new GemmPool(3)];
    const dropped: GemmPool[] = [];
    try {
      for (let g = 0; g < 3000; g++) {
        if (g % 500 === 499) {
          // Every 500 jobs the oldest pool leaves: closed, or only dropped (its workers stay asleep, unref'd).
          const old = pools.shift()!;
          if (g % 1000 === 999) await old.close();
          else dropped.push(old);
          pools.push(new GemmPool(2 + (g % 3)));
        }
        const shape = { m: 1 + ((g * 37) % 70), n: 1 + ((g * 53) % 90), k: 1 + ((g * 29) % 300), transA: g % 2 === 1, transB: g % 4 >= 2, beta: g % 3 === 0 ? 1 : 0, batch: 1 + (g % 5 === 0 ? 2 : 0) };
        const p = makeProblem(shape, g);
        const expected = Float32Array.from(p.c);
        const alone: SgemmArgs = { ...p, c: expected };
        for (let item = 0; item < p.batch; item++) ws.gemmBlock(alone, item, 0, p.m, 0, p.n);
        assert.equal(pools[g % pools.length]!.run(p, ws), true);
        assert.deepEqual(p.c, expected, `job ${g}: ${JSON.stringify(shape)}`);
      }
    } finally {
      await Promise.all([...pools, ...dropped].map((pool) => pool.close()));
    }
  });

  it('stops taking its workers once close() is called, so a job run before they exit is computed on the caller', async () => {
    const pool = new GemmPool(2);
    const ws = new GemmWorkspace();
    const p = makeProblem({ m: 64, n: 64, k: 64, transA: false, transB: false }, 1);
    const expected = Float32Array.from(p.c);
    ws.gemmBlock({ ...p, c: expected }, 0, 0, p.m, 0, p.n);
    const closing = pool.close();
    assert.equal(pool.usable, false);
    assert.equal(pool.run(p, ws), true);
    assert.deepEqual(p.c, expected);
    await closing;
  });
});
