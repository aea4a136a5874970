import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { GemmPool } from '../../src/backend/cpu/gemm-pool.js';
import { GemmWorkspace } from '../../src/backend/cpu/gemm-kernel.js';

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
