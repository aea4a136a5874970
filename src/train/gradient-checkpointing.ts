import type { CausalLM } from '../models/causal-lm.js';
import { enableGrad, isGradEnabled, noGrad } from '../tensor/grad-mode.js';
import type { Rng } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';

/**
 * y = fn(x) without keeping fn's activations: the forward runs without a graph (its intermediates are freed at
 * once), and backward recomputes fn with a graph, backpropagates g through it (parameters inside fn receive
 * their .grad there) and returns d(x). `rng`, when fn draws random numbers (dropout), is rewound for the
 * recomputation so both passes see the same masks, and put back afterwards.
 */
export function checkpoint(fn: (x: Tensor) => Tensor, x: Tensor, rng?: Rng): Tensor {
  if (!isGradEnabled()) return fn(x);
  const rngBefore = rng?.getState();
  const y = scope(() => noGrad(() => fn(x)));
  const out = new Tensor(y.buffer, y.shape, y.strides, y.offset);
  y.dispose();
  out.requiresGrad = true;
  out.gradFn = {
    name: 'checkpoint',
    inputs: [x],
    backward: (g) => {
      const rngAfter = rng?.getState();
      if (rng && rngBefore) rng.setState(rngBefore);
      try {
        return [scope(() => recomputeGradient(fn, x, g))];
      } finally {
        if (rng && rngAfter) rng.setState(rngAfter);
      }
    },
  };
  return out;
}

function recomputeGradient(fn: (x: Tensor) => Tensor, x: Tensor, g: Tensor): Tensor | null {
  const input = new Tensor(x.buffer, x.shape, x.strides, x.offset);
  input.requiresGrad = x.requiresGrad;
  const y = enableGrad(() => fn(input));
  if (!y.requiresGrad) return null;
  // Tensor.backward is async in signature only: the engine's pass runs synchronously within this call.
  void y.backward(g);
  const dx = input.grad;
  if (!dx) return null;
  // The engine keeps leaf gradients; this one is an intermediate of the outer pass and dies with its scope.
  dx.kept = false;
  return dx;
}

/** Wraps every decoder layer of `model` in checkpoint(); `rng` is the dropout generator of its adapters, if any. */
export function enableGradientCheckpointing(model: CausalLM, rng?: Rng): void {
  for (const layer of model.model.layers.items) {
    const forward = layer.forward.bind(layer);
    layer.forward = (x, inputs) => checkpoint((h) => forward(h, inputs), x, rng);
  }
}
