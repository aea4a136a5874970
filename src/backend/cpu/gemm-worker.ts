import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { CONTROL_INTS, FAILED, GENERATION, jobView, PENDING, READY, readJob, runUnits, type FailureMessage, type SlotMessage } from './gemm-job.js';
import { GemmWorkspace } from './gemm-kernel.js';

/**
 * Entry of a GEMM pool worker. It never returns to its event loop: it sleeps in Atomics.wait on the
 * generation word, applies the slot messages queued on its port, claims units until none are left, and
 * reports completion through the PENDING counter.
 */
export interface GemmWorkerData {
  readonly control: SharedArrayBuffer;
  readonly port: MessagePort;
  /** The generation the pool held when it created this worker; the next job bumps it. */
  readonly generation: number;
}

const { control, port, generation } = workerData as GemmWorkerData;
const ctl = new Int32Array(control, 0, CONTROL_INTS);
const job = jobView(control);
const slots: (Float32Array | undefined)[] = [];
const ws = new GemmWorkspace();

let seen = generation;
Atomics.add(ctl, READY, 1);
Atomics.notify(ctl, READY);
for (;;) {
  Atomics.wait(ctl, GENERATION, seen);
  seen = Atomics.load(ctl, GENERATION);
  for (let received = receiveMessageOnPort(port); received; received = receiveMessageOnPort(port)) {
    const { slot, buffer } = received.message as SlotMessage;
    slots[slot] = buffer ? new Float32Array(buffer, 0, Math.floor(buffer.byteLength / 4)) : undefined;
  }
  try {
    const { args, grid } = readJob(job, slots);
    runUnits(ctl, args, grid, ws);
  } catch (error) {
    const failure: FailureMessage = { error: error instanceof Error ? (error.stack ?? error.message) : String(error) };
    port.postMessage(failure);
    Atomics.store(ctl, FAILED, 1);
  }
  if (Atomics.sub(ctl, PENDING, 1) === 1) Atomics.notify(ctl, PENDING);
}
