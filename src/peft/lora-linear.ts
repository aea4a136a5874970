import { Linear } from '../nn/layers.js';
import { bumpParameterEpoch, currentParameterEpoch, Module, type ForwardContext, type LinearLike } from '../nn/module.js';
import { add, loraLinear, loraLinearGroup, matmul, mulScalar, multiLoraLinear, multiLoraLinearGroup, multiLoraNeedsGrad, prepareMultiLora, sub, to, type LoraGroupMember, type MultiLoraAdapter, type MultiLoraPlan } from '../ops/index.js';
import { noGrad } from '../tensor/grad-mode.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { AdapterDict } from './adapter-dict.js';
import { denseBase, isDequantizing } from './base-weight.js';
import type { DoraMagnitude } from './dora.js';
import { dropout } from './dropout.js';
import { PeftError } from './errors.js';
import { resolveLoraVariant, type LoraVariant, type MergedWeight } from './lora-variant.js';
import { routeRowsByAdapter } from './row-groups.js';
import type { LoraRuntimeState } from './runtime-state.js';
import { overwriteTensor } from './tensor-copy.js';

/** How one adapter acts on one layer. */
export interface LoraAdapterSettings {
  readonly r: number;
  readonly alpha: number;
  /** Multiplies B A x: alpha / r, or alpha / sqrt(r) with rsLoRA. */
  readonly scaling: number;
  readonly dropout: number;
  readonly useDora: boolean;
  readonly loraBias: boolean;
}

/** An adapter's tensors for one layer: A [r, in], B [out, r], B's bias [out], DoRA magnitude [out]. */
export interface LoraAdapterWeights {
  readonly a: Tensor;
  readonly b: Tensor;
  readonly bBias: Tensor | null;
  /** null with DoRA: initialised to the row norms of W + scaling B A, as PEFT does. */
  readonly magnitude: Tensor | null;
}

/** Gathered-call plans a layer keeps (one per recent batch composition). */
const GATHER_PLANS = 4;

/** A multiLoraLinear plan for one batch composition, and what it was built from (LoraLinear.planCurrent). */
interface GatherPlan {
  /** null when no row names an adapter of this layer. */
  readonly plan: MultiLoraPlan | null;
  /** currentParameterEpoch() when built: no adapter was added, deleted or given new tensors since while it is equal. */
  readonly epoch: number;
  /** Whether a slot's adapter has dropout (the plan does not apply while training). */
  readonly dropout: boolean;
}

/** A row-adapter list as its distinct names (in order of first use), each row's index among them, and a key. */
interface Composition {
  readonly key: string;
  readonly names: readonly string[];
  readonly rowName: Int32Array;
}

const compositions = new WeakMap<readonly string[], Composition>();

/** The composition of a row-adapter list, worked out once per list (a forward hands the same list to every layer). */
function compositionOf(rowAdapters: readonly string[]): Composition {
  let c = compositions.get(rowAdapters);
  if (c === undefined) {
    const index = new Map<string, number>();
    const rowName = new Int32Array(rowAdapters.length);
    for (let row = 0; row < rowAdapters.length; row++) {
      const name = rowAdapters[row]!;
      let i = index.get(name);
      if (i === undefined) {
        i = index.size;
        index.set(name, i);
      }
      rowName[row] = i;
    }
    c = { key: rowAdapters.join('\u0000'), names: [...index.keys()], rowName };
    compositions.set(rowAdapters, c);
  }
  return c;
}

/**
 * A linear layer with LoRA adapters: y = base(x) + sum over active adapters of scaling * B A dropout(x), or the
 * form of the adapter's variant (lora-variant.ts: DoRA). The base layer is any LinearLike (dense or 4-bit); merging
 * needs a dense one. Children follow PEFT's names: base_layer, lora_A.<adapter>, lora_B.<adapter>,
 * lora_magnitude_vector.<adapter>.
 */
export class LoraLinear extends Module implements LinearLike {
  readonly base_layer: LinearLike;
  readonly lora_A = new AdapterDict<Linear>();
  readonly lora_B = new AdapterDict<Linear>();
  readonly lora_magnitude_vector = new AdapterDict<DoraMagnitude>();
  private readonly settings = new Map<string, LoraAdapterSettings>();
  /** Each adapter's variant, resolved from its settings when added; null for plain LoRA. */
  private readonly variants = new Map<string, LoraVariant | null>();
  /** Adapters folded into the base weight, in merge order; unmerge undoes them last first. */
  private readonly mergedAdapters: string[] = [];
  /** Variants' MergedWeight.mergeState (DoRA: row norms at merge time), which unmerging undoes the merge with. */
  private readonly mergeStates = new Map<string, Tensor>();
  /** Plans of recent gathered (multi-adapter) calls by their row-adapter names, oldest first. */
  private readonly gatherPlans = new Map<string, GatherPlan>();
  /** Each adapter's MultiLoraAdapter for gathered plans, by name (gatherAdapter). */
  private readonly gatherAdapters = new Map<string, MultiLoraAdapter>();

  constructor(
    base: LinearLike,
    /** Module path in the base model, for messages. */
    readonly path: string,
    private readonly state: LoraRuntimeState,
  ) {
    super();
    this.base_layer = this.registerModule('base_layer', base);
    this.registerModule('lora_A', this.lora_A);
    this.registerModule('lora_B', this.lora_B);
    this.registerModule('lora_magnitude_vector', this.lora_magnitude_vector);
  }

  get inFeatures(): number {
    return this.base_layer.inFeatures;
  }
  get outFeatures(): number {
    return this.base_layer.outFeatures;
  }

  adapterNames(): string[] {
    return [...this.settings.keys()];
  }
  hasAdapter(name: string): boolean {
    return this.settings.has(name);
  }
  settingsOf(name: string): LoraAdapterSettings | undefined {
    return this.settings.get(name);
  }
  variantOf(name: string): LoraVariant | null {
    return this.variants.get(name) ?? null;
  }
  get merged(): boolean {
    return this.mergedAdapters.length > 0;
  }

  addAdapter(name: string, settings: LoraAdapterSettings, weights: LoraAdapterWeights): void {
    bumpParameterEpoch();
    this.settings.set(name, settings);
    this.lora_A.set(name, new Linear(weights.a));
    this.lora_B.set(name, new Linear(weights.b, weights.bBias));
    const variant = resolveLoraVariant(settings);
    this.variants.set(name, variant);
    variant?.init(this, name, weights);
  }

  /** Removes the adapter and frees its tensors; a merged adapter must be unmerged first. */
  deleteAdapter(name: string): void {
    if (this.mergedAdapters.includes(name)) {
      throw new PeftError(`Adapter "${name}" is merged into ${this.path}; call unmergeAdapter() before deleting it.`);
    }
    for (const dict of [this.lora_A, this.lora_B, this.lora_magnitude_vector] as AdapterDict<Module>[]) {
      const m = dict.get(name);
      if (!m) continue;
      for (const [, t] of m.namedParameters()) t.dispose();
      dict.delete(name);
    }
    this.settings.delete(name);
    this.variants.delete(name);
    this.gatherAdapters.delete(name);
    bumpParameterEpoch();
  }

  /** Drops every adapter (merged ones stay folded into the base weight) and returns the base layer: unloading. */
  unload(): LinearLike {
    this.mergedAdapters.length = 0;
    for (const state of this.mergeStates.values()) state.dispose();
    this.mergeStates.clear();
    for (const name of this.adapterNames()) this.deleteAdapter(name);
    return this.base_layer;
  }

  forward(x: Tensor, ctx?: ForwardContext): Tensor {
    if (!this.state.adaptersDisabled && !ctx?.rowAdapters && !this.merged) {
      const fused = this.fusedForward(x);
      if (fused) return fused;
    }
    const base = this.base_layer.forward(x, ctx);
    if (this.state.adaptersDisabled) return base;
    const rows = ctx?.rowAdapters;
    if (rows) return this.mixedBatchForward(x, base, rows);
    if (this.merged) return base;
    let result = base;
    for (const name of this.state.activeAdapters) if (this.settings.has(name)) result = this.withAdapter(name, x, result);
    return result;
  }

  /**
   * The common training case as one op (ops.loraLinear: the adapter product accumulated into the base GEMM's
   * output): exactly one active adapter on the plain path (isPlainNow) over a dense Linear
   * in x's dtype or a dequantizing 4-bit layer. Returns null where that op does not compute the same function.
   */
  private fusedForward(x: Tensor): Tensor | null {
    const plan = this.fusedPlan(x);
    if (!plan) return null;
    return plan.finish(loraLinear(plan.input, plan.member.weight, plan.member.a, plan.member.b, plan.member.scaling));
  }

  /**
   * What fusedForward runs, as parts: the op's input (x, or x cast to a 4-bit layer's compute dtype), the member
   * ops.loraLinear(Group) takes, and the step from the op's output to the layer's (bias, cast back). Null where
   * the op does not compute this layer's function.
   */
  private fusedPlan(x: Tensor): { input: Tensor; member: LoraGroupMember; finish: (y: Tensor) => Tensor } | null {
    const active = this.state.activeAdapters.filter((n) => this.settings.has(n));
    if (active.length !== 1) return null;
    const name = active[0]!;
    const s = this.settings.get(name)!;
    if (!this.isPlainNow(name, s)) return null;
    const a = this.lora_A.get(name)!.weight;
    const b = this.lora_B.get(name)!.weight;
    const base = this.base_layer;
    if (base instanceof Linear && base.weight.dtype === x.dtype) {
      const bias = base.bias;
      return { input: x, member: { weight: base.weight, a, b, scaling: s.scaling }, finish: (y) => (bias ? add(y, bias) : y) };
    }
    if (isDequantizing(base)) {
      const input = x.dtype === base.computeDtype ? x : to(x, { dtype: base.computeDtype });
      const finish = (y: Tensor): Tensor => {
        const biased = base.bias ? add(y, to(base.bias, { dtype: y.dtype })) : y;
        return biased.dtype === x.dtype ? biased : to(biased, { dtype: x.dtype });
      };
      return { input, member: { weight: () => base.dequantizedWeight(), a, b, scaling: s.scaling }, finish };
    }
    return null;
  }

  /**
   * forwardSharedInput's group in training (no per-row adapters): every layer on fusedForward's path with the same
   * op input runs as one ops.loraLinearGroup (x read once by the down-projections, one dx). Null otherwise.
   */
  private fusedGroupForward(group: readonly LoraLinear[], x: Tensor): Tensor[] | null {
    const plans: NonNullable<ReturnType<LoraLinear['fusedPlan']>>[] = [];
    for (const l of group) {
      if (l.state.adaptersDisabled || l.merged) return null;
      const plan = l.fusedPlan(x);
      if (!plan || plan.input !== x) return null;
      plans.push(plan);
    }
    const ys = loraLinearGroup(x, plans.map((p) => p.member));
    return ys.map((y, i) => plans[i]!.finish(y));
  }

  /**
   * Each row gets the adapter it names (or none): all rows' low-rank products in one multiLoraLinear call where
   * gatheredForward allows it, else every adapter once, on its own rows only.
   */
  private mixedBatchForward(x: Tensor, base: Tensor, rowAdapters: readonly string[]): Tensor {
    if (this.merged) throw new PeftError(`Per-row adapter names cannot be used while adapters are merged into ${this.path}; call unmergeAdapter() first.`);
    if (rowAdapters.length !== x.shape[0]) {
      throw new PeftError(`${rowAdapters.length} adapter names were given for a batch of ${x.shape[0]} rows; pass one name per row.`);
    }
    const gathered = this.gatheredForward(x, base, rowAdapters);
    if (gathered) return gathered;
    return routeRowsByAdapter(rowAdapters, x, base, (name) => this.settings.has(name), (name, xs, bs) => this.withAdapter(name, xs, bs));
  }

  /**
   * The serving path: base (already computed once for the whole batch) plus every row's adapter product in one
   * multiLoraLinear call, reading the adapters' weights in place, so nothing goes stale when they are updated.
   * Only where that op computes what withAdapter does: adapters on the plain path (isPlainNow) and no gradient to
   * record. Returns null otherwise.
   */
  private gatheredForward(x: Tensor, base: Tensor, rowAdapters: readonly string[]): Tensor | null {
    const cached = this.gatherPlanFor(rowAdapters);
    if (!cached) return null;
    const plan = cached.plan;
    if (!plan) return base;
    if (multiLoraNeedsGrad(x, base, plan)) return null;
    return multiLoraLinear(x, base, plan, undefined, true);
  }

  /**
   * forwardSharedInput's group (q, k, v; gate, up) in serving: every layer's base product, then all of their
   * adapter products in one multiLoraLinearGroup call, written over those base products (made here, read by
   * nothing else). Takes the group only when every layer is a LoraLinear of
   * the same model on the gathered path with per-row adapters; returns null otherwise (each layer runs alone).
   */
  forwardGroup(layers: readonly LinearLike[], x: Tensor, ctx?: ForwardContext): Tensor[] | null {
    const group: LoraLinear[] = [];
    for (const l of layers) {
      if (!(l instanceof LoraLinear) || l.state !== this.state || l.merged) return null;
      group.push(l);
    }
    const rowAdapters = ctx?.rowAdapters;
    if (!rowAdapters) return this.state.adaptersDisabled ? null : this.fusedGroupForward(group, x);
    if (this.state.adaptersDisabled || rowAdapters.length !== x.shape[0]) return null;
    const plans: (MultiLoraPlan | null)[] = [];
    for (const l of group) {
      const cached = l.gatherPlanFor(rowAdapters);
      if (!cached) return null;
      plans.push(cached.plan);
    }
    const bases = group.map((l) => l.base_layer.forward(x, ctx));
    const withAdapters = plans.flatMap((plan, i) => (plan ? [{ base: bases[i]!, plan }] : []));
    if (withAdapters.some(({ base, plan }) => multiLoraNeedsGrad(x, base, plan))) return group.map((l, i) => l.mixedBatchForward(x, bases[i]!, rowAdapters));
    const outs = multiLoraLinearGroup(x, withAdapters, true);
    let next = 0;
    return plans.map((plan, i) => (plan ? outs[next++]! : bases[i]!));
  }

  /** The cached (or a new) gathered plan for this batch composition; null where the gathered path does not apply. */
  private gatherPlanFor(rowAdapters: readonly string[]): GatherPlan | null {
    const key = compositionOf(rowAdapters).key;
    let cached = this.gatherPlans.get(key);
    if (cached && !this.planCurrent(cached)) {
      this.gatherPlans.delete(key);
      cached = undefined;
    }
    if (cached) return cached;
    const built = this.buildGatherPlan(rowAdapters);
    if (!built) return null;
    const reusable = built.plan === null || built.plan.adapters.every(({ a, b }) => a.isContiguous() && b.isContiguous());
    if (reusable) {
      if (this.gatherPlans.size >= GATHER_PLANS) this.gatherPlans.delete(this.gatherPlans.keys().next().value!);
      this.gatherPlans.set(key, built);
    }
    return built;
  }

  /** The adapters rows name, as slots, or null where a named adapter cannot take the gathered path. */
  private buildGatherPlan(rowAdapters: readonly string[]): GatherPlan | null {
    const { names, rowName } = compositionOf(rowAdapters);
    // Each distinct name's slot among this layer's adapters in the plan, -1 where this layer lacks it.
    const slotOf = new Int32Array(names.length);
    const adapters: MultiLoraAdapter[] = [];
    let dropout = false;
    for (let i = 0; i < names.length; i++) {
      const s = this.settings.get(names[i]!);
      if (!s) {
        slotOf[i] = -1;
        continue;
      }
      if (!this.isPlainNow(names[i]!, s)) return null;
      slotOf[i] = adapters.length;
      adapters.push(this.gatherAdapter(names[i]!, s.scaling));
      dropout ||= s.dropout > 0;
    }
    const plan = adapters.length === 0 ? null : prepareMultiLora(adapters, Array.from(rowName, (i) => slotOf[i]!), this.inFeatures, this.outFeatures);
    return { plan, epoch: currentParameterEpoch(), dropout };
  }

  /**
   * The same MultiLoraAdapter object for an adapter every time while its tensors and scale stay (so a plan for a new
   * batch composition reuses prepareMultiLora's checks of it instead of repeating them).
   */
  private gatherAdapter(name: string, scale: number): MultiLoraAdapter {
    const a = this.lora_A.get(name)!.weight;
    const b = this.lora_B.get(name)!.weight;
    const known = this.gatherAdapters.get(name);
    if (known && known.a === a && known.b === b && known.scale === scale) return known;
    const adapter = { a, b, scale };
    this.gatherAdapters.set(name, adapter);
    return adapter;
  }

  /**
   * Whether a cached plan still holds: no adapter added, deleted or given new tensors anywhere since it was built
   * (one number compared, not every adapter of the batch), and no dropout at work.
   */
  private planCurrent(p: GatherPlan): boolean {
    return p.epoch === currentParameterEpoch() && !(this.state.training && p.dropout);
  }

  /** Whether the adapter computes just scaling * B A x now: no variant, no LoRA bias, no dropout at work. */
  private isPlainNow(name: string, s: LoraAdapterSettings): boolean {
    return this.variantOf(name) === null && !s.loraBias && !(this.state.training && s.dropout > 0);
  }

  /** result + this adapter's contribution for input x (result holds the base output and earlier adapters'). */
  private withAdapter(name: string, x: Tensor, result: Tensor): Tensor {
    const s = this.settings.get(name)!;
    const loraA = this.lora_A.get(name)!;
    const loraB = this.lora_B.get(name)!;
    const input = to(x, { dtype: loraA.weight.dtype });
    const dropped = this.state.training && s.dropout > 0 ? dropout(input, s.dropout, this.state.rng) : null;
    const lora = loraB.forward(loraA.forward(dropped ?? input));
    const variant = this.variantOf(name);
    const term = variant ? variant.forward(this, name, dropped ?? input, dropped !== null, lora, result) : mulScalar(lora, s.scaling);
    return add(result, to(term, { dtype: result.dtype }));
  }

  /** scaling * B A in float32 [out, in]: what merging adds to the base weight. */
  deltaWeight(name: string): Tensor {
    const s = this.settings.get(name);
    if (!s) throw new PeftError(`${this.path} has no adapter "${name}".`);
    const a = to(this.lora_A.get(name)!.weight, { dtype: 'float32' });
    const b = to(this.lora_B.get(name)!.weight, { dtype: 'float32' });
    return mulScalar(matmul(b, a), s.scaling);
  }

  /** The float32 weight that merging `name` into float32 `weight` gives: W + scaling * B A, or its variant's. */
  mergedWeight(name: string, weight: Tensor): MergedWeight {
    const updated = add(weight, this.deltaWeight(name));
    return this.variantOf(name)?.mergedWeight(this, name, updated) ?? { weight: updated, mergeState: null };
  }

  /** Folds the named adapters into the base weight in place (PEFT's merge); already merged ones are skipped. */
  merge(names: readonly string[]): void {
    const base = denseBase(this.base_layer, this.path, 'merge adapters into');
    for (const name of names) {
      const s = this.settings.get(name);
      if (!s || this.mergedAdapters.includes(name)) continue;
      noGrad(() =>
        scope(() => {
          const { weight, mergeState } = this.mergedWeight(name, to(base.weight, { dtype: 'float32' }));
          if (mergeState) this.mergeStates.set(name, mergeState.keep());
          overwriteTensor(base.weight, weight);
          if (s.loraBias) overwriteTensor(this.baseBiasForLoraBias(base), add(base.bias!, mulScalar(this.lora_B.get(name)!.bias!, s.scaling)));
        }),
      );
      this.mergedAdapters.push(name);
    }
  }

  /** Undoes every merge, last first, subtracting exactly the delta that was added (after the variant's unmergedWeight). */
  unmerge(): void {
    const base = denseBase(this.base_layer, this.path, 'unmerge adapters from');
    while (this.mergedAdapters.length > 0) {
      const name = this.mergedAdapters.pop()!;
      const s = this.settings.get(name)!;
      noGrad(() =>
        scope(() => {
          const weight = to(base.weight, { dtype: 'float32' });
          const variant = this.variantOf(name);
          const unscaled = variant ? variant.unmergedWeight(this, name, weight, this.mergeStates.get(name) ?? null) : weight;
          overwriteTensor(base.weight, sub(unscaled, this.deltaWeight(name)));
          if (s.loraBias) overwriteTensor(this.baseBiasForLoraBias(base), sub(base.bias!, mulScalar(this.lora_B.get(name)!.bias!, s.scaling)));
        }),
      );
      this.mergeStates.get(name)?.dispose();
      this.mergeStates.delete(name);
    }
  }

  private baseBiasForLoraBias(base: Linear): Tensor {
    if (!base.bias) throw new PeftError(`${this.path} has no bias, so an adapter with lora_bias cannot be merged into it.`);
    return base.bias;
  }
}
