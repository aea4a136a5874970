import type { Tensor } from '../tensor/tensor.js';

/**
 * Per-call information that layers deep in a model need but the model's own code does not interpret:
 * which adapter each batch row uses (mixed-adapter batches). Passed down explicitly, never held globally.
 */
export interface ForwardContext {
  /** One adapter name per batch row; "__base__" means no adapter for that row. */
  readonly rowAdapters?: readonly string[];
}

/** A layer mapping [..., in] to [..., out]: Linear, its 4-bit variant, and LoRA's wrapper of either. */
export interface LinearLike extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  forward(x: Tensor, ctx?: ForwardContext): Tensor;
  /**
   * Optional: the forwards of `layers` (this layer first) over the same input, when this kind of layer can share
   * work between them (LoRA serving: every projection's adapter products in one launch). Returns null where it
   * cannot; forwardSharedInput then runs each layer's forward.
   */
  forwardGroup?(layers: readonly LinearLike[], x: Tensor, ctx?: ForwardContext): Tensor[] | null;
}

/** layers.map((l) => l.forward(x, ctx)), through the first layer's forwardGroup where it takes the group. */
export function forwardSharedInput(layers: readonly LinearLike[], x: Tensor, ctx?: ForwardContext): Tensor[] {
  return layers[0]?.forwardGroup?.(layers, x, ctx) ?? layers.map((l) => l.forward(x, ctx));
}

let parameterEpoch = 0;

/**
 * A number that changes whenever any module's parameter tensor is replaced (setParameter) or a caller marks a
 * structural change (bumpParameterEpoch): caches of derived state (LoRA's gathered plans) compare it instead of
 * every tensor they hold. In-place updates (optimizer steps) keep tensors and so keep it.
 */
export function currentParameterEpoch(): number {
  return parameterEpoch;
}

export function bumpParameterEpoch(): void {
  parameterEpoch++;
}

/**
 * Base of every layer: named parameters and children in registration order, so parameter names come out
 * exactly as transformers spells them ("model.layers.0.self_attn.q_proj.weight").
 */
export abstract class Module {
  private readonly params = new Map<string, Tensor | null>();
  private readonly children = new Map<string, Module>();

  protected registerParameter(name: string, t: Tensor | null): void {
    this.params.set(name, t);
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    return m;
  }

  /** Removes a child registered under `name` (deleting an adapter's weights); a missing name is a no-op. */
  protected unregisterModule(name: string): void {
    this.children.delete(name);
  }

  /** Replaces a parameter tensor in place of the old one (loading, merging, dtype moves). */
  setParameter(name: string, t: Tensor | null): void {
    if (!this.params.has(name)) throw new Error(`${this.constructor.name} has no parameter "${name}".`);
    this.params.set(name, t);
    (this as unknown as Record<string, Tensor | null>)[name] = t;
    parameterEpoch++;
  }

  getParameter(name: string): Tensor | null {
    return this.params.get(name) ?? null;
  }

  ownParameterNames(): string[] {
    return [...this.params.keys()];
  }

  namedChildren(): [string, Module][] {
    return [...this.children.entries()];
  }

  /** Swaps the child called `name` (LoRA injection, merge-and-unload). */
  replaceChild(name: string, m: Module): void {
    if (!this.children.has(name)) throw new Error(`${this.constructor.name} has no submodule "${name}".`);
    this.children.set(name, m);
    (this as unknown as Record<string, Module>)[name] = m;
  }

  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [name, child] of this.children) yield* child.namedModules(prefix ? `${prefix}.${name}` : name);
  }

  *namedParameters(prefix = ''): Generator<[string, Tensor]> {
    for (const [name, t] of this.params) if (t) yield [prefix ? `${prefix}.${name}` : name, t];
    for (const [name, child] of this.children) yield* child.namedParameters(prefix ? `${prefix}.${name}` : name);
  }

  getSubmodule(path: string): Module {
    if (path === '') return this;
    let m: Module = this;
    for (const part of path.split('.')) {
      const next = m.children.get(part);
      if (!next) throw new Error(`No submodule "${path}" (stopped at "${part}").`);
      m = next;
    }
    return m;
  }

  /** Marks every parameter trainable or frozen. */
  requiresGrad_(flag: boolean): this {
    for (const [, p] of this.namedParameters()) p.requiresGrad = flag;
    return this;
  }
}

/** Children in an indexed list ("layers.0", "layers.1", ...). */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[] = [];
  constructor(items: M[]) {
    super();
    items.forEach((m, i) => {
      this.items.push(m);
      this.registerModule(String(i), m);
    });
  }
  override replaceChild(name: string, m: Module): void {
    super.replaceChild(name, m);
    this.items[Number(name)] = m as M;
  }
}
