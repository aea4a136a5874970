import type { Tensor } from '../tensor/tensor.js';
import { formatShape } from '../tensor/shape.js';
import { isGradEnabled, noGrad } from '../tensor/grad-mode.js';
import { scope } from '../tensor/scope.js';
import { full, to } from './creation.js';
import { add, addScalar, div, greater, mul, mulScalar, neg, tanh } from './elementwise.js';
import { allocLike, makeResult, sameDevice } from './engine.js';
import { kernels } from './composed-kernels.js';
import { linear, matmul } from './matmul.js';
import { sum } from './reduce.js';
import { cat, compact, narrow, reshape, transpose } from './shape-ops.js';

export interface LinearCrossEntropyOptions {
  /** Final-logit soft-capping (Gemma 2): when > 0 the logits are softcap * tanh(z / softcap) before the loss. */
  readonly softcap?: number;
  readonly ignoreIndex?: number;
  /** Rows per chunk; by default as many as keep one chunk's logits near 2^25 elements (64 MiB in bf16). */
  readonly chunkRows?: number;
}

const CHUNK_ELEMENTS = 2 ** 25;

/**
 * Mean cross-entropy of the logits h W^T (soft-capped when asked) against int32 labels, over the positions whose
 * label is not ignoreIndex, without the [rows, vocab] logits ever existing whole: rows go through in chunks, and
 * when a gradient will be needed each chunk's dlogits are formed right after its loss and turned at once into the
 * chunk's dh = dlogits W (and, for a trainable W, float32 dW += dlogits^T h). The op keeps dh [rows, hidden] where
 * the composed path keeps logits and their gradient, [rows, vocab] each (Liger's and Unsloth's fused linear
 * cross-entropy). Each chunk runs the kernels the composed path runs (the GEMM, the cross-entropy kernels, the
 * soft-cap's elementwise ops), so results agree with `crossEntropy(linear(h, W))` to the GEMMs' accumulation
 * order; the backward scales the kept gradients by the loss's own gradient.
 *   h [rows, hidden], weight [vocab, hidden], labels int32 [rows]; returns a scalar (NaN with no targets, as torch).
 */
export function linearCrossEntropy(h: Tensor, weight: Tensor, labels: Tensor, options: LinearCrossEntropyOptions = {}): Tensor {
  const { softcap = 0, ignoreIndex = -100 } = options;
  if (h.rank !== 2 || weight.rank !== 2 || h.shape[1] !== weight.shape[1] || labels.numel !== h.shape[0]) {
    throw new Error(`linearCrossEntropy needs h [rows, hidden], weight [vocab, hidden] and labels [rows]; got ${formatShape(h.shape)}, ${formatShape(weight.shape)} and ${formatShape(labels.shape)}.`);
  }
  if (!(softcap >= 0 && Number.isFinite(softcap))) throw new Error(`linearCrossEntropy: softcap must be a finite number >= 0, got ${softcap}.`);
  const rows = h.shape[0]!;
  const vocab = weight.shape[0]!;
  const chunk = Math.max(1, Math.min(rows, options.chunkRows ?? Math.floor(CHUNK_ELEMENTS / vocab)));
  const lb = compact(reshape(labels, [rows]));
  const backend = sameDevice(h, weight, lb);
  const needDh = isGradEnabled() && h.requiresGrad;
  const needDw = isGradEnabled() && weight.requiresGrad;

  const { mean, dh, dw } = noGrad(() => {
    const valid = greater(lb, full([], ignoreIndex, { device: h.device }));
    const count = sum(valid);
    const losses: Tensor[] = [];
    const dhParts: Tensor[] = [];
    let dw: Tensor | null = needDw ? full(weight.shape, 0, { dtype: 'float32', device: h.device }) : null;
    for (let r0 = 0; r0 < rows; r0 += chunk) {
      const n = Math.min(chunk, rows - r0);
      const part = scope(() => {
        const hc = narrow(h, 0, r0, n);
        const lc = compact(narrow(lb, 0, r0, n));
        let z = compact(linear(hc, weight));
        let t: Tensor | null = null;
        if (softcap > 0) {
          t = tanh(div(z, full([], softcap, { dtype: z.dtype, device: z.device })));
          z = compact(mulScalar(t, softcap));
        }
        const loss = makeResult(backend.alloc('float32', n), [n], 'linearCrossEntropyRows', [], null);
        const lse = makeResult(backend.alloc('float32', n), [n], 'linearCrossEntropyLse', [], null);
        kernels(backend).crossEntropy(z.buffer, lc.buffer, n, vocab, ignoreIndex, loss.buffer, lse.buffer);
        const out: { loss: Tensor; dh: Tensor | null; dw: Tensor | null } = { loss, dh: null, dw: null };
        if (!needDh && !needDw) return out;
        // d(mean loss)/dz for a loss gradient of 1; then back through the soft-cap as its ops' backward would go.
        const scale = compact(div(narrow(valid, 0, r0, n), count));
        const dzBuffer = allocLike(backend, z.dtype, z.shape);
        kernels(backend).crossEntropyBackward(z.buffer, lse.buffer, lc.buffer, scale.buffer, n, vocab, ignoreIndex, dzBuffer);
        let dz = makeResult(dzBuffer, z.shape, 'linearCrossEntropyChunk', [], null);
        if (t) dz = div(mul(mulScalar(dz, softcap), addScalar(neg(mul(t, t)), 1)), full([], softcap, { dtype: dz.dtype, device: dz.device }));
        if (needDh) out.dh = matmul(dz, weight);
        if (needDw) out.dw = matmul(transpose(dz), hc);
        return out;
      });
      losses.push(part.loss);
      if (part.dh) dhParts.push(part.dh);
      if (part.dw && dw) {
        const f32 = to(part.dw, { dtype: 'float32' });
        const next = add(dw, f32);
        for (const t of [dw, f32, part.dw]) t.dispose();
        dw = next;
      }
    }
    return {
      mean: div(sum(losses.length === 1 ? losses[0]! : cat(losses, 0)), count),
      dh: needDh ? (dhParts.length === 1 ? dhParts[0]! : cat(dhParts, 0)) : null,
      dw,
    };
  });
  return makeResult(mean.buffer, [], 'linearCrossEntropy', [h, weight], (g) => [dh ? mul(dh, g) : null, dw ? to(mul(dw, g), { dtype: weight.dtype }) : null]);
}
