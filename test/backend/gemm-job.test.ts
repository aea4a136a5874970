import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import {
  CONTROL_INTS, controlBytes, FAILED, GENERATION, jobViews, PENDING, planUnits, READY, waitForChange, workerWords, writeJob,
  type FailureMessage, type GemmWorkerData,
} from '../../src/backend/cpu/gemm-job.js';

/** Waits (bounded) until ints[index] differs from `value`, for tests that must not hang when the code under test fails. */
function awaitChange(ints: Int32Array, index: number, value: number, what: string): void {
  assert.ok(waitForChange(ints, index, value, 10_000), `${what} did not happen within 10 s`);
}

describe('waitForChange: the wait both the pool and its workers sleep in', () => {
  it('returns only once the word has changed, not when a notify wakes it with the old value still there', () => {
    // [0] the watched word, [1] 1 once the notifier runs, [2] 1 once a notify found this thread asleep on [0] = 0.
    const words = new Int32Array(new SharedArrayBuffer(4 * 4));
    // A notify that arrives after its change was already seen (the notifier descheduled between its store and its
    // notify, the waiter done and asleep again) wakes a waiter whose word has not changed since it went to sleep.
    const notifier = new Worker(
      `const w = new Int32Array(require('node:worker_threads').workerData);
       Atomics.store(w, 1, 1); Atomics.notify(w, 1);
       while (Atomics.notify(w, 0, 1) === 0);
       Atomics.store(w, 2, 1);
       Atomics.wait(w, 3, 0, 100);
       Atomics.store(w, 0, 1); Atomics.notify(w, 0);`,
      { eval: true, workerData: words.buffer },
    );
    try {
      awaitChange(words, 1, 0, 'the notifier thread starting');
      assert.equal(waitForChange(words, 0, 0, 10_000), true);
      assert.deepEqual([Atomics.load(words, 0), Atomics.load(words, 2)], [1, 1]);
    } finally {
      void notifier.terminate();
    }
  });

  it('returns false when the timeout passes with the word unchanged', () => {
    const words = new Int32Array(new SharedArrayBuffer(4));
    assert.equal(waitForChange(words, 0, 0, 20), false);
  });
});

describe('gemm-worker.js: a job that throws', () => {
  it('is reported through FAILED and the port, and still counted finished in PENDING', async () => {
    const control = new SharedArrayBuffer(controlBytes(1));
    const ctl = new Int32Array(control, 0, CONTROL_INTS);
    const { port1, port2 } = new MessageChannel();
    const data: GemmWorkerData = { control, index: 0, workers: 1, port: port2, generation: 0 };
    const worker = new Worker(new URL('../../src/backend/cpu/gemm-worker.js', import.meta.url), { workerData: data, transferList: [port2], execArgv: [] });
    try {
      awaitChange(ctl, READY, 0, 'the worker starting');
      // Slot 7 names a buffer the worker was never sent.
      const n = 4, a = new Float32Array(n * n);
      const args = { m: n, n, k: n, transA: false, transB: false, a, aOffset: 0, lda: n, b: a, bOffset: 0, ldb: n, c: a, cOffset: 0, ldc: n, alpha: 1, beta: 0, batch: 1, strideA: 0, strideB: 0, strideC: 0 };
      writeJob(jobViews(control), args, { aSlot: 7, aOffset: 0, bSlot: 7, bOffset: 0, cSlot: 7, cOffset: 0 }, planUnits(n, n, 1, 2));
      Atomics.store(ctl, PENDING, 1);
      Atomics.add(ctl, GENERATION, 1);
      Atomics.notify(ctl, GENERATION);
      awaitChange(ctl, PENDING, 1, 'the worker finishing the job');
      const failure = receiveMessageOnPort(port1)?.message as FailureMessage | undefined;
      assert.deepEqual([Atomics.load(ctl, PENDING), Atomics.load(ctl, FAILED), [...workerWords(control, 1)]], [0, 1, [1, 1]]);
      assert.match(failure?.error ?? '', /^Error: GEMM worker: operand slot 7 is empty \(the pool sent no buffer for it\)\./);
    } finally {
      port1.close();
      await worker.terminate();
    }
  });
});
