import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import type { SgemmArgs } from './gemm.js';
import {
  CONTROL_INTS, controlBytes, FAILED, GENERATION, jobFitsInt32, jobViews, NEXT_UNIT, PENDING, planUnits, READY, runUnits,
  waitForChange, workerWords, writeJob,
  type FailureMessage, type GemmWorkerData, type JobViews, type SlotMessage,
} from './gemm-job.js';
import type { GemmWorkspace } from './gemm-kernel.js';

/**
 * A persistent pool of GEMM workers (threads - 1 of them; the calling thread computes too) that makes a
 * parallel GEMM look synchronous: the caller writes the job into a shared control block, wakes the workers
 * with Atomics.notify, claims units alongside them, and waits (polls, then sleeps in Atomics.wait) until the
 * last one is done.
 * Workers are unref'd, so an idle pool never keeps the process alive.
 *
 * Operands must live in SharedArrayBuffers for workers to see them. Each buffer is sent to every worker
 * once and then named by slot number; operands on ordinary ArrayBuffers are copied into pool-owned shared
 * staging buffers (and C copied back), which costs O(size) against the O(m n k) of the product.
 */

/** Buffers the workers keep references to at once; the least recently used slot is reused beyond that. */
const SLOT_COUNT = 64;
/** A worker that has not picked up a job this long after it was posted is considered gone (awaitWorkers). */
const STALL_MS = 30_000;
const STALL_CHECK_MS = 1000;
/** How long pool creation waits for every worker to start before giving up on threads. */
const STARTUP_TIMEOUT_MS = 20_000;

/**
 * One per buffer the workers have been sent, made (and registered for finalization) once in the buffer's life, so
 * that a long-lived buffer (a weight, a pooled array) evicted from its slot and sent again adds no registration.
 */
interface Slot {
  readonly buffer: WeakRef<SharedArrayBuffer>;
  lastUse: number;
  /** The slot the workers hold it in; -1 after its slot went to another buffer. */
  slot: number;
}

interface Operand {
  readonly slot: number;
  /** Element offset from the start of the slot's buffer. */
  readonly offset: number;
  readonly whole: Float32Array;
}

type Role = 'A' | 'B' | 'C';

export class GemmPool {
  private readonly control: SharedArrayBuffer;
  private readonly ctl: Int32Array;
  private readonly job: JobViews;
  /** Per worker: the generation it last picked up, the generation it last finished. */
  private readonly status: Int32Array;
  private readonly workers: { readonly worker: Worker; readonly port: MessagePort }[] = [];
  private readonly slots: (Slot | undefined)[] = new Array<Slot | undefined>(SLOT_COUNT).fill(undefined);
  private readonly known = new WeakMap<SharedArrayBuffer, Slot>();
  private readonly released = new FinalizationRegistry<Slot>((entry) => this.release(entry));
  private readonly staging = new Map<Role, SharedArrayBuffer>();
  private clock = 0;
  /** Set once a worker failed to pick up a job: the pool then takes no more jobs. */
  private stalled = false;

  /**
   * Starts threads - 1 workers and waits until all of them run. Throws when the worker script is missing
   * or the workers do not start in time; the caller then computes on one thread.
   */
  constructor(readonly threads: number) {
    const script = new URL('./gemm-worker.js', import.meta.url);
    if (!existsSync(fileURLToPath(script))) {
      throw new Error(`GEMM worker script ${fileURLToPath(script)} is missing; rebuild with \`npm run build\`.`);
    }
    const workers = threads - 1;
    this.control = new SharedArrayBuffer(controlBytes(workers));
    this.ctl = new Int32Array(this.control, 0, CONTROL_INTS);
    this.job = jobViews(this.control);
    this.status = workerWords(this.control, workers);
    for (let index = 0; index < workers; index++) {
      const { port1, port2 } = new MessageChannel();
      const data: GemmWorkerData = { control: this.control, index, workers, port: port2, generation: this.ctl[GENERATION]! };
      const worker = new Worker(script, { workerData: data, transferList: [port2], execArgv: [] });
      worker.unref();
      port1.unref();
      this.workers.push({ worker, port: port1 });
    }
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    for (let ready = Atomics.load(this.ctl, READY); ready < this.workers.length; ready = Atomics.load(this.ctl, READY)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        void this.close();
        throw new Error(`GEMM workers did not start within ${STARTUP_TIMEOUT_MS / 1000} s (${ready} of ${this.workers.length} running).`);
      }
      Atomics.wait(this.ctl, READY, ready, left);
    }
  }

  /**
   * Runs the whole GEMM on every thread of the pool; `ws` is the calling thread's workspace. Returns false,
   * having done nothing, when the job's indices do not fit in int32 (buffers beyond 8 GiB).
   */
  run(p: SgemmArgs, ws: GemmWorkspace): boolean {
    const aRows = p.transA ? p.k : p.m, aCols = p.transA ? p.m : p.k;
    const bRows = p.transB ? p.n : p.k, bCols = p.transB ? p.k : p.n;
    const aSpan = span(p.batch, p.strideA, aRows, p.lda, aCols);
    const bSpan = span(p.batch, p.strideB, bRows, p.ldb, bCols);
    const cSpan = span(p.batch, p.strideC, p.m, p.ldc, p.n);
    if (!jobFitsInt32(p, [start(p.a, p.aOffset) + aSpan, start(p.b, p.bOffset) + bSpan, start(p.c, p.cOffset) + cSpan])) return false;
    const a = this.operand('A', p.a, p.aOffset, aSpan);
    const b = this.operand('B', p.b, p.bOffset, bSpan);
    // A staged C is copied in even when beta = 0: the copy back covers the whole span, gaps between rows included.
    const c = this.operand('C', p.c, p.cOffset, cSpan);
    const grid = planUnits(p.m, p.n, p.batch, this.threads);
    writeJob(this.job, p, { aSlot: a.slot, aOffset: a.offset, bSlot: b.slot, bOffset: b.offset, cSlot: c.slot, cOffset: c.offset }, grid);
    Atomics.store(this.ctl, NEXT_UNIT, 0);
    Atomics.store(this.ctl, FAILED, 0);
    Atomics.store(this.ctl, PENDING, this.workers.length);
    // | 0: the word wraps at 2^31 like the Int32 status words it is compared with.
    const generation = (Atomics.add(this.ctl, GENERATION, 1) + 1) | 0;
    Atomics.notify(this.ctl, GENERATION);
    try {
      runUnits(this.ctl, { ...p, a: a.whole, aOffset: a.offset, b: b.whole, bOffset: b.offset, c: c.whole, cOffset: c.offset }, grid, ws);
    } finally {
      this.awaitWorkers(generation);
    }
    if (Atomics.load(this.ctl, FAILED) !== 0) throw new Error(`GEMM worker failed: ${this.failures().join('\n')}`);
    if (c.whole.buffer !== p.c.buffer) p.c.set(c.whole.subarray(0, cSpan), p.cOffset);
    return true;
  }

  /** False once a worker has stalled (see awaitWorkers): the caller then computes on its own thread. */
  get usable(): boolean {
    return !this.stalled && this.workers.length > 0;
  }

  /**
   * Waits until every worker has finished job `generation`. A worker that has not even picked the job up
   * after STALL_MS (it died, or its thread is never scheduled) cannot hold any unit (it records the pick-up
   * before claiming, and every unit was claimed before this wait), so it is left behind and the pool is
   * retired instead of hanging the caller forever.
   */
  private awaitWorkers(generation: number): void {
    const start = performance.now();
    for (let pending = Atomics.load(this.ctl, PENDING); pending !== 0; pending = Atomics.load(this.ctl, PENDING)) {
      if (waitForChange(this.ctl, PENDING, pending, STALL_CHECK_MS) || performance.now() - start < STALL_MS) continue;
      const idle = this.workers.map((_, w) => w).filter((w) => Atomics.load(this.status, 2 * w) !== generation);
      if (idle.length === 0) continue;
      // The workers that did pick the job up may still be computing units: wait for those.
      for (let w = 0; w < this.workers.length; w++) {
        while (!idle.includes(w) && Atomics.load(this.status, 2 * w + 1) !== generation) Atomics.wait(this.ctl, PENDING, Atomics.load(this.ctl, PENDING), STALL_CHECK_MS);
      }
      this.stalled = true;
      process.emitWarning(`loraforge: GEMM worker(s) ${idle.join(', ')} did not pick up a job within ${STALL_MS / 1000} s; GEMM continues on one thread.`);
      return;
    }
  }

  /**
   * Stops the workers. They leave the pool at once, so a job run before they have exited is computed on the
   * calling thread alone instead of being posted to threads that are going away.
   */
  async close(): Promise<void> {
    const leaving = this.workers.splice(0);
    await Promise.all(leaving.map(({ worker }) => worker.terminate()));
  }

  private operand(role: Role, view: Float32Array, offset: number, length: number): Operand {
    const buffer = view.buffer;
    if (buffer instanceof SharedArrayBuffer) {
      // | 0: run() checked that it fits, and an int32 keeps the kernels' index arithmetic in integers.
      return { slot: this.slotOf(buffer), offset: start(view, offset) | 0, whole: new Float32Array(buffer, 0, Math.floor(buffer.byteLength / 4)) };
    }
    let stage = this.staging.get(role);
    if (!stage || stage.byteLength < length * 4) {
      stage = new SharedArrayBuffer(length * 4);
      this.staging.set(role, stage);
    }
    const whole = new Float32Array(stage);
    whole.set(view.subarray(offset, offset + length));
    return { slot: this.slotOf(stage), offset: 0, whole };
  }

  /** The slot holding `buffer`, sending it to the workers first if no slot does. */
  private slotOf(buffer: SharedArrayBuffer): number {
    const now = ++this.clock;
    let entry = this.known.get(buffer);
    if (entry && entry.slot >= 0) {
      entry.lastUse = now;
      return entry.slot;
    }
    let victim = 0;
    let victimUse = Infinity;
    for (let s = 0; s < SLOT_COUNT; s++) {
      const held = this.slots[s];
      const use = held?.buffer.deref() === undefined ? -1 : held!.lastUse;
      if (use < victimUse) {
        victim = s;
        victimUse = use;
      }
    }
    if (!entry) {
      entry = { buffer: new WeakRef(buffer), lastUse: now, slot: -1 };
      this.known.set(buffer, entry);
      this.released.register(buffer, entry);
    }
    const evicted = this.slots[victim];
    if (evicted) evicted.slot = -1;
    entry.slot = victim;
    entry.lastUse = now;
    this.slots[victim] = entry;
    this.post({ slot: victim, buffer });
    return victim;
  }

  /** A buffer was collected on this thread: let the workers drop their reference too. */
  private release(entry: Slot): void {
    if (entry.slot < 0 || this.slots[entry.slot] !== entry) return;
    this.slots[entry.slot] = undefined;
    this.post({ slot: entry.slot, buffer: null });
  }

  private post(message: SlotMessage): void {
    for (const { port } of this.workers) port.postMessage(message);
  }

  private failures(): string[] {
    const errors: string[] = [];
    for (const { port } of this.workers) {
      for (let received = receiveMessageOnPort(port); received; received = receiveMessageOnPort(port)) {
        errors.push((received.message as FailureMessage).error);
      }
    }
    return errors;
  }
}

/** Where an operand starts in the buffer the workers see: its own buffer if shared, else a staging copy. */
function start(view: Float32Array, offset: number): number {
  return view.buffer instanceof SharedArrayBuffer ? view.byteOffset / 4 + offset : 0;
}

/** Elements from the first to one past the last element a batch of rows x cols matrices touches. */
function span(batch: number, stride: number, rows: number, ld: number, cols: number): number {
  return (batch - 1) * stride + (rows - 1) * ld + cols;
}
