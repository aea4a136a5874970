import type { AdamWArgs } from '../backend/backend.js';
import { getBackend } from '../backend/registry.js';
import { CudaBackend } from '../backend/cuda/cuda-backend.js';
import { CudaBuffer } from '../backend/cuda/cuda-buffer.js';
import type { PinnedHostMemory } from '../backend/cuda/driver.js';
import { HostPager } from '../backend/cuda/host-memory.js';
import { fromHost } from '../ops/index.js';
import { kernels } from '../ops/composed-kernels.js';
import type { HostArray } from '../tensor/buffer.js';
import { bytesPerElement, type DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import type { AdamWParamState } from './adamw.js';

export interface PagedStateOptions {
  /**
   * Device bytes of one staging slot: the moments of the parameters updated together. Default 64 MiB; grown
   * to fit the largest single parameter's two moments.
   */
  slotBytes?: number;
  /** Staging slots (at least 2): while the main stream updates one, the side stream pages the next in. Default 2. */
  slots?: number;
}

/** The step-independent AdamW hyperparameters; weight decay comes per parameter. */
export interface AdamWHyper {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
}

const DEFAULT_SLOT_BYTES = 64 * 2 ** 20;
/** Staging offsets are multiples of this (bytes), so every moment view is aligned for any dtype and coalesced access. */
const ALIGN = 256;

function aligned(bytes: number): number {
  return Math.ceil(bytes / ALIGN) * ALIGN;
}

/** One parameter's moments: [expAvg | expAvgSq] in the pinned block at `hostOffset`, each `bytes` long. */
interface PagedParam {
  readonly name: string;
  readonly param: Tensor;
  readonly dtype: DType;
  readonly numel: number;
  readonly bytes: number;
  readonly hostOffset: number;
  /** Byte offset of expAvg in its staging slot (expAvgSq follows at + aligned(bytes)). */
  slotOffset: number;
  /** Updates applied so far (torch's state['step']); 0 means no state yet. */
  step: number;
}

interface Slot {
  readonly buffer: CudaBuffer;
  /** Recorded on the side stream when this slot's batch is in device memory. */
  readonly loaded: number;
  /** Recorded on the main stream when the AdamW kernels of this slot's batch are queued. */
  readonly updated: number;
}

/**
 * AdamW moments that live in pinned host memory and are paged in per step, as bitsandbytes' paged optimizers
 * promise (optimizer state that does not compete with activations for device memory), but built on explicit
 * copies instead of managed memory: parameters are grouped into batches that fit a staging slot; the side stream
 * copies batch i+1 in while the main stream runs batch i's AdamW kernels, then copies batch i back out once those
 * kernels are done (events order the two streams). prefetch() queues the first batches early, e.g. before the
 * backward pass, so that their copies overlap with it. The update arithmetic is the backend's adamw kernel, so
 * results equal the non-paged optimizer's bit for bit. Device memory used: `slots` x slotBytes.
 */
export class PagedAdamWState {
  private readonly pager: HostPager;
  private readonly backend: CudaBackend;
  private readonly params: PagedParam[] = [];
  private readonly byName = new Map<string, PagedParam>();
  private readonly host: PinnedHostMemory;
  private readonly slots: Slot[] = [];
  private slotBytes: number;
  private batches: PagedParam[][] = [];
  /** Batches already queued for loading by prefetch() and not yet consumed by step(). */
  private prefetched = 0;

  constructor(params: ReadonlyMap<string, Tensor>, backend: CudaBackend, options: PagedStateOptions = {}) {
    this.backend = backend;
    this.pager = new HostPager(backend.runtime);
    let hostBytes = 0;
    let largest = 0;
    for (const [name, param] of params) {
      const bytes = param.numel * bytesPerElement(param.dtype);
      const entry: PagedParam = { name, param, dtype: param.dtype, numel: param.numel, bytes, hostOffset: hostBytes, slotOffset: 0, step: 0 };
      this.params.push(entry);
      this.byName.set(name, entry);
      hostBytes += 2 * aligned(bytes);
      largest = Math.max(largest, 2 * aligned(bytes));
    }
    this.host = this.pager.allocHost(hostBytes);
    this.slotBytes = Math.max(options.slotBytes ?? DEFAULT_SLOT_BYTES, largest, ALIGN);
    const slots = Math.max(2, options.slots ?? 2);
    for (let i = 0; i < slots; i++) {
      const slot: Slot = { buffer: backend.alloc('uint8', this.slotBytes) as CudaBuffer, loaded: this.pager.event(), updated: this.pager.event() };
      // The allocation's zero fill is queued on the main stream; the side stream's first copy in must follow it.
      this.pager.mainReached(slot.updated);
      this.pager.sideWaitFor(slot.updated);
      this.slots.push(slot);
    }
    this.batches = this.pack();
  }

  /** Consecutive parameters grouped so that each group's moments fit one slot; assigns slot offsets. */
  private pack(): PagedParam[][] {
    const batches: PagedParam[][] = [];
    let current: PagedParam[] = [];
    let used = 0;
    for (const p of this.params) {
      const need = 2 * aligned(p.bytes);
      if (used + need > this.slotBytes && current.length > 0) {
        batches.push(current);
        current = [];
        used = 0;
      }
      p.slotOffset = used;
      current.push(p);
      used += need;
    }
    if (current.length > 0) batches.push(current);
    return batches;
  }

  private hostAddress(p: PagedParam, second: boolean): number {
    return this.host.hostPtr + p.hostOffset + (second ? aligned(p.bytes) : 0);
  }

  private slotAddress(slot: Slot, p: PagedParam, second: boolean): number {
    return slot.buffer.at(0) + p.slotOffset + (second ? aligned(p.bytes) : 0);
  }

  /** Side stream: host -> slot for batch i, then marks the slot loaded. */
  private load(i: number): void {
    const slot = this.slots[i % this.slots.length]!;
    for (const p of this.batches[i]!) {
      this.pager.toDevice(this.slotAddress(slot, p, false), this.hostAddress(p, false), p.bytes);
      this.pager.toDevice(this.slotAddress(slot, p, true), this.hostAddress(p, true), p.bytes);
    }
    this.pager.sideReached(slot.loaded);
  }

  /** Side stream: slot -> host for batch i, after its AdamW kernels. */
  private store(i: number): void {
    const slot = this.slots[i % this.slots.length]!;
    this.pager.sideWaitFor(slot.updated);
    for (const p of this.batches[i]!) {
      this.pager.toHost(this.hostAddress(p, false), this.slotAddress(slot, p, false), p.bytes);
      this.pager.toHost(this.hostAddress(p, true), this.slotAddress(slot, p, true), p.bytes);
    }
  }

  /** Queues the first batches' copies to the device now, so they overlap with work queued before step(). */
  prefetch(): void {
    const want = Math.min(this.slots.length, this.batches.length);
    while (this.prefetched < want) this.load(this.prefetched++);
  }

  /** One AdamW update of every parameter that has a gradient; the others keep their state and step count. */
  step(hyper: AdamWHyper, weightDecayOf: (name: string) => number, lrOf?: (name: string) => number): void {
    this.prefetch();
    const n = this.batches.length;
    const k = this.slots.length;
    for (let i = 0; i < n; i++) {
      const slot = this.slots[i % k]!;
      this.pager.mainWaitFor(slot.loaded);
      for (const p of this.batches[i]!) {
        const grad = p.param.grad;
        if (!grad) continue;
        p.step += 1;
        this.update(p, grad, slot, { ...hyper, lr: lrOf ? lrOf(p.name) : hyper.lr, weightDecay: weightDecayOf(p.name), step: p.step });
      }
      this.pager.mainReached(slot.updated);
      this.store(i);
      if (i + k < n) this.load(i + k);
    }
    this.prefetched = 0;
  }

  private update(p: PagedParam, grad: Tensor, slot: Slot, args: AdamWArgs): void {
    if (!p.param.isContiguous() || p.param.offset !== 0 || !grad.isContiguous() || grad.offset !== 0) {
      throw new Error(`AdamW: the parameter "${p.name}" and its gradient must be contiguous tensors that own their storage from element 0.`);
    }
    if (grad.numel !== p.numel) throw new Error(`AdamW: the gradient of "${p.name}" has ${grad.numel} elements but the parameter has ${p.numel}.`);
    const device = this.backend.device;
    const expAvg = new CudaBuffer(device, p.dtype, p.numel, this.slotAddress(slot, p, false));
    const expAvgSq = new CudaBuffer(device, p.dtype, p.numel, this.slotAddress(slot, p, true));
    kernels(this.backend).adamw(p.param.buffer, grad.buffer, expAvg, expAvgSq, p.numel, args);
  }

  private hostCopy(p: PagedParam, second: boolean): HostArray {
    const at = p.hostOffset + (second ? aligned(p.bytes) : 0);
    const bytes = this.host.view.slice(at, at + p.bytes);
    switch (p.dtype) {
      case 'float32':
        return new Float32Array(bytes);
      case 'bfloat16':
      case 'float16':
        return new Uint16Array(bytes);
      default:
        throw new Error(`AdamW state of "${p.name}" has dtype ${p.dtype}; only floating parameters are trained.`);
    }
  }

  /** A host ('cpu') copy of the parameter's state after every queued update, or undefined before its first update. */
  stateOf(name: string): AdamWParamState | undefined {
    const p = this.byName.get(name);
    if (!p || p.step === 0) return undefined;
    this.backend.runtime.synchronize();
    this.pager.synchronize();
    const shape = p.param.shape;
    return { step: p.step, expAvg: fromHost(this.hostCopy(p, false), shape, p.dtype, 'cpu'), expAvgSq: fromHost(this.hostCopy(p, true), shape, p.dtype, 'cpu') };
  }

  /** Copies saved moments (tensors on this optimizer's device, of the parameter's dtype) into host memory and disposes them. */
  setState(name: string, s: AdamWParamState): void {
    const p = this.byName.get(name);
    if (!p) throw new Error(`Optimizer state names "${name}", which is not a trainable parameter of this model.`);
    const moments = [s.expAvg, s.expAvgSq] as const;
    for (const t of moments) {
      if (t.device !== this.backend.device || t.dtype !== p.dtype || !t.isContiguous()) {
        throw new Error(`Paged optimizer state for "${name}" must be a contiguous ${p.dtype} tensor on ${this.backend.device}; got ${t.dtype} on ${t.device}.`);
      }
    }
    const ready = this.pager.event();
    this.pager.mainReached(ready);
    this.pager.sideWaitFor(ready);
    moments.forEach((t, k) => this.pager.toHost(this.hostAddress(p, k === 1), (t.buffer as CudaBuffer).at(t.offset), p.bytes));
    this.pager.synchronize();
    this.pager.destroyEvent(ready);
    for (const t of moments) t.dispose();
    p.step = s.step;
    this.prefetched = 0;
  }

  stateNames(): string[] {
    return this.params.filter((p) => p.step > 0).map((p) => p.name);
  }

  /** Bytes of moments held in pinned host memory for parameters that have state. */
  stateBytes(): number {
    return this.params.reduce((sum, p) => sum + (p.step > 0 ? 2 * p.bytes : 0), 0);
  }

  /** Device bytes of the staging slots. */
  deviceBytes(): number {
    return this.slots.length * this.slotBytes;
  }
}

/** The paged store for `params` when they live on a CUDA device; null on the CPU, whose memory is host memory already. */
export function pagedStateFor(params: ReadonlyMap<string, Tensor>, options: PagedStateOptions): PagedAdamWState | null {
  const first = params.values().next().value;
  if (!first) return null;
  const backend = getBackend(first.device);
  if (!(backend instanceof CudaBackend)) return null;
  for (const [name, p] of params) {
    if (p.device !== first.device) throw new Error(`Paged AdamW needs every parameter on one device; "${name}" is on ${p.device}, others on ${first.device}.`);
  }
  return new PagedAdamWState(params, backend, options);
}
