import type { Backend } from '../backend/backend.js';
import { getBackend } from '../backend/registry.js';
import '../backend/cpu/index.js';
import type { DeviceBuffer } from '../tensor/buffer.js';
import type { DType } from '../tensor/dtype.js';
import { isGradEnabled, noGrad } from '../tensor/grad-mode.js';
import { formatShape, type Shape } from '../tensor/shape.js';
import { installTensorRuntime, nextTensorId, Tensor, type GradGroup, type GradNode } from '../tensor/tensor.js';

export function backendOf(t: Tensor): Backend {
  if (t.disposed) throw new Error(`A disposed tensor ${formatShape(t.shape)} was used; keep() it or move it out of the scope that freed it.`);
  return getBackend(t.device);
}

export function sameDevice(...ts: Tensor[]): Backend {
  const first = ts[0]!;
  for (const t of ts) {
    if (t.device !== first.device) throw new Error(`Tensors on ${first.device} and ${t.device} were combined; move them to one device first.`);
  }
  return backendOf(first);
}

/**
 * Wraps a freshly written buffer as the result of an op, recording the op in the autograd graph when grad
 * mode is on and some input requires grad. `backward` receives d(result) and returns one gradient per input.
 */
export function makeResult(
  buffer: DeviceBuffer,
  shape: Shape,
  name: string,
  inputs: readonly Tensor[],
  backward: ((g: Tensor) => (Tensor | null)[]) | null,
  strides?: readonly number[],
  offset = 0,
): Tensor {
  const out = new Tensor(buffer, shape, strides, offset);
  if (backward && isGradEnabled() && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.gradFn = { name, inputs, backward };
  }
  return out;
}

/**
 * The outputs of an op with several (GradGroup): recorded as one node, whose backward receives every output's
 * gradient at once (null for outputs that got none) and returns one gradient per input.
 */
export function makeResults(
  results: readonly { readonly buffer: DeviceBuffer; readonly shape: Shape }[],
  name: string,
  inputs: readonly Tensor[],
  backward: (gradOutputs: readonly (Tensor | null)[]) => (Tensor | null)[],
): Tensor[] {
  const outs = results.map((r) => new Tensor(r.buffer, r.shape));
  if (isGradEnabled() && inputs.some((t) => t.requiresGrad)) {
    const op: GradGroup = { name, inputs, outputs: outs.length, backward };
    outs.forEach((out, index) => {
      out.requiresGrad = true;
      out.gradFn = {
        name,
        inputs,
        group: { op, index },
        backward: () => {
          throw new Error(`Internal error: output ${index} of ${name} was differentiated alone.`);
        },
      };
    });
  }
  return outs;
}

/** An op's output buffer, uninitialized: every op that allocates through here writes all of it. */
export function allocLike(backend: Backend, dtype: DType, shape: Shape): DeviceBuffer {
  let n = 1;
  for (const d of shape) n *= d;
  return backend.allocUninitialized(dtype, n);
}

/** Float dtype of an op over several inputs: float32 wins, then the first input's. */
export function promote(...ts: Tensor[]): DType {
  if (ts.some((t) => t.dtype === 'float32')) return 'float32';
  const fl = ts.find((t) => t.dtype === 'bfloat16' || t.dtype === 'float16');
  return fl ? fl.dtype : 'float32';
}

type Accumulate = (a: Tensor, b: Tensor) => Tensor;
type OnesLike = (t: Tensor) => Tensor;
type Contiguous = (t: Tensor) => Tensor;
let accumulate: Accumulate | null = null;
let onesLike: OnesLike | null = null;
let contiguous: Contiguous | null = null;

/** The ops the engine needs, registered by ops/index.ts (they are written on top of this file). */
export function installEngineOps(ops: { add: Accumulate; onesLike: OnesLike; contiguous: Contiguous }): void {
  accumulate = ops.add;
  onesLike = ops.onesLike;
  contiguous = ops.contiguous;
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<number>();
  const stack: { t: Tensor; expanded: boolean }[] = [{ t: root, expanded: false }];
  while (stack.length) {
    const top = stack.pop()!;
    if (top.expanded) {
      order.push(top.t);
      continue;
    }
    if (seen.has(top.t.id)) continue;
    seen.add(top.t.id);
    stack.push({ t: top.t, expanded: true });
    for (const input of top.t.gradFn?.inputs ?? []) if (input.requiresGrad && !seen.has(input.id)) stack.push({ t: input, expanded: false });
  }
  return order;
}

/**
 * Reverse mode over the graph below `root`. Gradient tensors that this pass creates are freed as soon as nothing
 * pending needs them (their node has run and no other input's entry holds them), so the pass holds the gradients
 * of the frontier rather than of the whole graph; leaf .grads are kept, and tensors that existed before the pass
 * (forward activations, a caller's `grad`) are never freed here.
 */
function runBackward(root: Tensor, grad: Tensor | null): void {
  if (!root.requiresGrad) {
    throw new Error('backward() was called on a tensor that does not require grad; make some parameter trainable (requiresGrad) before the forward pass.');
  }
  if (!grad && root.numel !== 1) throw new Error(`backward() without a gradient needs a scalar; this tensor has shape ${formatShape(root.shape)}.`);
  const order = topoOrder(root);
  const grads = new Map<number, Tensor>();
  // Tensor ids grow monotonically: anything with a larger id than this was made by this pass.
  const firstId = nextTensorId();
  /** Entries of `grads` that hold each tensor (one gradient can flow to several inputs unchanged). */
  const holders = new Map<Tensor, number>();
  const hold = (t: Tensor): void => {
    holders.set(t, (holders.get(t) ?? 0) + 1);
  };
  /** Drops one hold (or none, for a tensor never held) and frees the tensor once unheld, if this pass made it. */
  const release = (t: Tensor, held: boolean): void => {
    const n = (holders.get(t) ?? 0) - (held ? 1 : 0);
    if (n > 0) {
      holders.set(t, n);
      return;
    }
    holders.delete(t);
    if (t.id >= firstId && !t.kept) t.dispose();
  };
  /** Gives each input of `node` its gradient from `inputGrads`, summing where one already waits. */
  const distribute = (node: GradNode | GradGroup, inputGrads: (Tensor | null)[]): void => {
    node.inputs.forEach((input, k) => {
      const ig = inputGrads[k];
      if (!ig) return;
      if (!input.requiresGrad) {
        release(ig, false);
        return;
      }
      if (ig.shape.length !== input.shape.length || ig.shape.some((d, j) => d !== input.shape[j])) {
        throw new Error(`Internal error: ${node.name} produced a gradient of shape ${formatShape(ig.shape)} for an input of shape ${formatShape(input.shape)}.`);
      }
      const prev = grads.get(input.id);
      if (!prev) {
        grads.set(input.id, ig);
        hold(ig);
        return;
      }
      const total = accumulate!(prev, ig);
      grads.set(input.id, total);
      hold(total);
      release(prev, true);
      release(ig, false);
    });
  };
  /** Per multi-output op: its outputs' gradients so far and how many of its outputs in `order` are still to come. */
  const groups = new Map<GradGroup, { grads: (Tensor | null)[]; left: number }>();
  for (const t of order) {
    const op = t.gradFn?.group?.op;
    if (!op) continue;
    const state = groups.get(op) ?? { grads: new Array<Tensor | null>(op.outputs).fill(null), left: 0 };
    state.left++;
    groups.set(op, state);
  }
  noGrad(() => {
    const seed = grad ?? onesLike!(root);
    grads.set(root.id, seed);
    hold(seed);
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i]!;
      const g = grads.get(t.id);
      const member = t.gradFn?.group;
      if (member) {
        // Outputs come before the op's inputs in reverse order, so the op runs once its last output is reached.
        const state = groups.get(member.op)!;
        if (g) {
          grads.delete(t.id);
          state.grads[member.index] = g;
        }
        if (--state.left > 0) continue;
        if (state.grads.some((x) => x)) distribute(member.op, member.op.backward(state.grads));
        for (const x of state.grads) if (x) release(x, true);
        continue;
      }
      if (!g) continue;
      grads.delete(t.id);
      if (!t.gradFn) {
        const incoming = contiguous!(g);
        const previous = t.grad;
        t.grad = previous ? accumulate!(previous, incoming) : incoming;
        t.grad.keep();
        // Accumulation replaces .grad (torch adds in place); the superseded tensor is freed, not leaked.
        if (previous) previous.dispose();
        if (incoming !== t.grad) release(incoming, false);
        release(g, true);
        continue;
      }
      distribute(t.gradFn, t.gradFn.backward(g));
      release(g, true);
    }
  });
  // Release the graph: saved activations become collectable and a second backward() needs a new forward.
  for (const t of order) if (t.gradFn) t.gradFn = null;
}

installTensorRuntime({
  toHost: async (t) => {
    const d = contiguous!(t);
    return backendOf(d).toHost(d.buffer, d.offset, d.numel);
  },
  backward: runBackward,
  release: (buffer) => getBackend(buffer.device).release(buffer),
});
