import { isMainThread, receiveMessageOnPort, workerData } from 'node:worker_threads';
import {
  CONTROL_INTS, FAILED, GENERATION, jobViews, PENDING, READY, readJob, runUnits, waitForChange, workerWords,
  type FailureMessage, type GemmWorkerData, type SlotMessage,
} from './gemm-job.js';
import { GemmWorkspace } from './gemm-kernel.js';

/**
 * Entry of a GEMM pool worker. It never returns to its event loop: it waits (polls, then sleeps) on the
 * generation word, applies the slot messages queued on its port, claims units until none are left, and
 * reports completion through the PENDING counter.
 */
if (isMainThread) throw new Error('gemm-worker.js is the entry of a GEMM pool worker; GemmPool starts it, nothing imports it.');

const { control, index, workers, port, generation } = workerData as GemmWorkerData;
const ctl = new Int32Array(control, 0, CONTROL_INTS);
const status = workerWords(control, workers);
const job = jobViews(control);
const slots: (Float32Array | undefined)[] = [];
const ws = new GemmWorkspace();

let seen = generation;
Atomics.add(ctl, READY, 1);
Atomics.notify(ctl, READY);
for (;;) {
  waitForChange(ctl, GENERATION, seen);
  seen = Atomics.load(ctl, GENERATION);
  Atomics.store(status, 2 * index, seen);
  // Whatever throws from here on is reported through FAILED and the port, and the job still counts as finished:
  // the pool waits for PENDING alone, so a worker that skipped the decrement would leave it waiting forever.
  try {
    for (let received = receiveMessageOnPort(port); received; received = receiveMessageOnPort(port)) {
      const { slot, buffer } = received.message as SlotMessage;
      slots[slot] = buffer ? new Float32Array(buffer, 0, Math.floor(buffer.byteLength / 4)) : undefined;
    }
    const { args, grid } = readJob(job, slots);
    runUnits(ctl, args, grid, ws);
  } catch (error) {
    const failure: FailureMessage = { error: error instanceof Error ? (error.stack ?? error.message) : String(error) };
    port.postMessage(failure);
    Atomics.store(ctl, FAILED, 1);
  }
  Atomics.store(status, 2 * index + 1, seen);
  if (Atomics.sub(ctl, PENDING, 1) === 1) Atomics.notify(ctl, PENDING);
}
