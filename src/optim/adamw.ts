import { zerosLike } from '../ops/index.js';
import { bytesPerElement } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { adamwUpdate } from './adamw-update.js';
import { pagedStateFor, type PagedAdamWState, type PagedStateOptions } from './paged-state.js';

export interface AdamWOptions {
  /** Learning rate; a scheduler overwrites `AdamW.lr` before each step. Default 1e-3 (torch). */
  lr?: number;
  betas?: readonly [number, number];
  eps?: number;
  /** Decoupled weight decay: p *= 1 - lr * weightDecay before the Adam update. Default 0.01 (torch). */
  weightDecay?: number;
  /** Parameters that get no weight decay (transformers' Trainer exempts biases and norm weights). */
  noDecay?: (name: string) => boolean;
  /**
   * Keep the moments in pinned host memory and page them in per step (paged-state.ts); CUDA only, ignored on
   * the CPU, whose memory is host memory already. Results equal the non-paged optimizer's.
   */
  paged?: boolean | PagedStateOptions;
  /**
   * torch's parameter groups: each named parameter of a group uses the group's lr and weight decay (noDecay does not
   * apply to them). A scheduler's `AdamW.lr` scales every group alike: a group steps at group.lr * lr / options.lr,
   * as LambdaLR scales each group's initial lr.
   */
  groups?: readonly AdamWParamGroup[];
}

export interface AdamWParamGroup {
  readonly names: readonly string[];
  readonly lr: number;
  readonly weightDecay: number;
}

/** Per-parameter state, named as torch's state_dict names it. */
export interface AdamWParamState {
  /** Number of updates this parameter received (torch's state['step']). */
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
}

/**
 * torch.optim.AdamW (single-tensor path, amsgrad off, maximize off). Parameters are addressed by name so that
 * saved state reloads onto a freshly built model. A parameter without a gradient is skipped, state and step
 * count untouched, as in torch.
 */
export class AdamW {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly params: ReadonlyMap<string, Tensor>;
  private readonly noDecay: (name: string) => boolean;
  private readonly state = new Map<string, AdamWParamState>();
  private readonly paged: PagedAdamWState | null;
  /** The lr the options gave (the groups' lrs are relative to it), and each grouped parameter's group. */
  private readonly baseLr: number;
  private readonly groupOf = new Map<string, AdamWParamGroup>();

  constructor(params: ReadonlyMap<string, Tensor>, options: AdamWOptions = {}) {
    this.params = params;
    this.lr = options.lr ?? 1e-3;
    [this.beta1, this.beta2] = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
    this.noDecay = options.noDecay ?? (() => false);
    this.baseLr = this.lr;
    for (const group of options.groups ?? []) {
      for (const name of group.names) {
        if (!params.has(name)) throw new Error(`AdamW parameter group names "${name}", which is not among the parameters.`);
        if (this.groupOf.has(name)) throw new Error(`AdamW parameter "${name}" is in two parameter groups; put it in one.`);
        this.groupOf.set(name, group);
      }
    }
    for (const [name, p] of params) {
      if (!p.requiresGrad) throw new Error(`AdamW was given "${name}", which does not require grad; pass only trainable parameters.`);
    }
    this.paged = options.paged ? pagedStateFor(params, options.paged === true ? {} : options.paged) : null;
  }

  /** With paged state: starts copying the first moments to the device now (call before backward() to overlap). */
  prefetchState(): void {
    this.paged?.prefetch();
  }

  step(): void {
    if (this.paged) {
      const hyper = { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps };
      this.paged.step(hyper, (name) => this.weightDecayOf(name), (name) => this.lrOf(name));
      return;
    }
    for (const [name, p] of this.params) {
      if (!p.grad) continue;
      let s = this.state.get(name);
      if (!s) {
        s = { step: 0, expAvg: zerosLike(p).keep(), expAvgSq: zerosLike(p).keep() };
        this.state.set(name, s);
      }
      s.step += 1;
      adamwUpdate(p, p.grad, s.expAvg, s.expAvgSq, {
        lr: this.lrOf(name),
        beta1: this.beta1,
        beta2: this.beta2,
        eps: this.eps,
        weightDecay: this.weightDecayOf(name),
        step: s.step,
      });
    }
  }

  /** The rate parameter `name` steps at now: its group's lr scaled as the schedule scales `lr`. */
  lrOf(name: string): number {
    const group = this.groupOf.get(name);
    if (!group) return this.lr;
    return this.baseLr === 0 ? 0 : group.lr * (this.lr / this.baseLr);
  }

  private weightDecayOf(name: string): number {
    const group = this.groupOf.get(name);
    if (group) return group.weightDecay;
    return this.noDecay(name) ? 0 : this.weightDecay;
  }

  /** Frees every gradient (torch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.params.values()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** With paged state: a host ('cpu') copy. */
  stateOf(name: string): AdamWParamState | undefined {
    if (this.paged) return this.paged.stateOf(name);
    return this.state.get(name);
  }

  /** Elements of trainable parameter `name`, or null when the optimizer has no such parameter. */
  parameterSize(name: string): number | null {
    return this.params.get(name)?.numel ?? null;
  }

  /** Installs saved state (checkpoint resume); tensors are adopted, not copied. */
  setState(name: string, s: AdamWParamState): void {
    const p = this.params.get(name);
    if (!p) throw new Error(`Optimizer state names "${name}", which is not a trainable parameter of this model.`);
    for (const t of [s.expAvg, s.expAvgSq]) {
      if (t.numel !== p.numel) throw new Error(`Optimizer state for "${name}" has ${t.numel} elements but the parameter has ${p.numel}.`);
    }
    if (this.paged) {
      this.paged.setState(name, s);
      return;
    }
    this.state.get(name)?.expAvg.dispose();
    this.state.get(name)?.expAvgSq.dispose();
    this.state.set(name, { step: s.step, expAvg: s.expAvg.keep(), expAvgSq: s.expAvgSq.keep() });
  }

  stateNames(): string[] {
    if (this.paged) return this.paged.stateNames();
    return [...this.state.keys()];
  }

  /** Bytes held by the moment tensors (what the report's memory accounting states). */
  stateBytes(): number {
    if (this.paged) return this.paged.stateBytes();
    let bytes = 0;
    for (const s of this.state.values()) bytes += 2 * s.expAvg.numel * bytesPerElement(s.expAvg.dtype);
    return bytes;
  }
}
