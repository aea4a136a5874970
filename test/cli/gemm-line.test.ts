// train says in one line which GEMM the CPU backend runs, and how to get a faster one when it is the built-in.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { describeCpuGemm } from '../../src/cli/train.js';
import { cli, MODEL, smallDataset, tempDir } from './helpers.js';

test('the GEMM line names the CBLAS library, or the built-in with the way to a faster one', () => {
  assert.equal(describeCpuGemm({ implementation: 'openblas', threads: 2, library: 'libopenblas.so.0' }), 'CPU GEMM: libopenblas.so.0 (2 threads).');
  assert.match(describeCpuGemm({ implementation: 'workers', threads: 2 }), /^CPU GEMM: loraforge's built-in WebAssembly SIMD GEMM \(2 threads\), .*apt-get install libopenblas0-pthread.*LORAFORGE_BLAS/);
  assert.match(describeCpuGemm({ implementation: 'single-thread', threads: 1 }), /\(1 thread\)/);
});

test('train prints the built-in GEMM line when LORAFORGE_BLAS=none', async () => {
  const dir = await tempDir();
  const r = cli(['train', '--model', MODEL, '--data', await smallDataset(dir), '--output', join(dir, 'run'), '--max-steps', '1'], { LORAFORGE_BLAS: 'none' });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^CPU GEMM: loraforge's built-in WebAssembly SIMD GEMM/m);
});
