/**
 * The 'cpu-primitives' test device (test/helpers/device.ts): the CPU backend with every fused kernel hidden, so
 * that LORAFORGE_TEST_DEVICE=cpu-primitives runs the parameterized suites through ops/'s compositions
 * (ops/composed-kernels.ts). This file checks that the device is what those runs assume, and that a backend
 * with a kernel keeps calling its own.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FUSED_KERNELS } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu/cpu-backend.js';
import { cpuBackend } from '../../src/backend/cpu/index.js';
import { getBackend } from '../../src/backend/registry.js';
import { COMPOSED_BY_THEIR_OPS, kernels } from '../../src/ops/composed-kernels.js';
import * as ops from '../../src/ops/index.js';
import { PRIMITIVES_DEVICE, registerPrimitivesDevice } from '../helpers/device.js';

registerPrimitivesDevice();

test('cpu-primitives hides every fused kernel and keeps every other method', () => {
  const p = getBackend(PRIMITIVES_DEVICE);
  for (const name of FUSED_KERNELS) {
    assert.equal(p[name], undefined, name);
    assert.equal(name in p, false, name);
    assert.equal(typeof cpuBackend[name], 'function', `the CPU backend implements ${name}`);
  }
  const hidden = new Set<string>(FUSED_KERNELS);
  const methods = Object.getOwnPropertyNames(Object.getPrototypeOf(cpuBackend)).filter((m) => m !== 'constructor' && !hidden.has(m));
  for (const m of ['alloc', 'copy', 'fill', 'unary', 'binary', 'affine', 'reduce', 'matmul', 'embedding']) assert.ok(methods.includes(m), m);
  for (const m of methods) assert.equal(typeof (p as unknown as Record<string, unknown>)[m], 'function', m);
});

test("tensors made on cpu-primitives stay on it, and ops reach its backend", async () => {
  const x = ops.tensor([1, 2, 3, 4], [2, 2], { device: PRIMITIVES_DEVICE });
  assert.equal(x.device, PRIMITIVES_DEVICE);
  const y = ops.softmax(x);
  assert.equal(y.device, PRIMITIVES_DEVICE);
  const e = Math.exp(1);
  const want = [1 / (1 + e), e / (1 + e), 1 / (1 + e), e / (1 + e)];
  (await y.data()).forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 1e-7, `${v} vs ${want[i]}`));
});

test('kernels() calls the backend\'s own kernel where it has one and the composition where it has none', () => {
  // A CpuBackend whose every fused kernel is replaced by a recorder: kernels() must call each of them.
  const probe = new CpuBackend('cpu-probe');
  const called: string[] = [];
  const table = kernels(probe);
  for (const name of Object.keys(table)) (probe as unknown as Record<string, unknown>)[name] = () => called.push(name);
  for (const fn of Object.values(table)) (fn as () => void)();
  assert.deepEqual(called, Object.keys(table));
  // Every optional kernel but those their ops compose from tensor ops has a buffer-level composition, which the
  // primitives device gets (it has none of the methods: the first test).
  const byOps = new Set<string>(COMPOSED_BY_THEIR_OPS);
  assert.deepEqual(Object.keys(table).sort(), FUSED_KERNELS.filter((n) => !byOps.has(n)).sort());
  assert.equal(kernels(cpuBackend), kernels(cpuBackend), 'one table per backend');
});

test('the composed AdamW step has CpuBackend.adamw\'s bits (torch\'s float32 arithmetic), lerp either side of 0.5', () => {
  const n = 1000;
  const rnd = (seed: number, scale: number): Float32Array => Float32Array.from({ length: n }, (_, i) => scale * Math.sin(seed * 7919 + i * 104.729));
  const composedAdamw = kernels(getBackend(PRIMITIVES_DEVICE)).adamw;
  for (const args of [
    { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 3 },
    { lr: 0.05, beta1: 0.3, beta2: 0.95, eps: 1e-6, weightDecay: 0, step: 1 },
  ]) {
    const outs = [cpuBackend, getBackend(PRIMITIVES_DEVICE)].map((b, which) => {
      const [p, g, m, v] = [rnd(1, 1), rnd(2, 0.1), rnd(3, 0.05), rnd(4, 0.01).map(Math.abs)].map((a) => b.fromHost('float32', a));
      (which === 0 ? cpuBackend.adamw.bind(cpuBackend) : composedAdamw)(p!, g!, m!, v!, n, args);
      return [p!, m!, v!].map((buf) => Array.from(b.toHostNow(buf, 0, n) as Float32Array));
    });
    assert.deepEqual(outs[1], outs[0], `beta1 ${args.beta1}`);
  }
});
