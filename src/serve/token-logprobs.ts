import { getBackend } from '../backend/registry.js';
import { add, argmax, embedding, exp, log, max, reshape, sub, sum, tensor, to } from '../ops/index.js';
import type { Tensor } from '../tensor/tensor.js';

export interface TopLogprob {
  readonly token: number;
  readonly logprob: number;
}

/** A chosen token's log-probability and the `top` most likely tokens at its position, most likely first. */
export interface TokenLogprob extends TopLogprob {
  readonly top: readonly TopLogprob[];
}

/** One row of a logits tensor to read: the token chosen there and how many alternatives to list. */
export interface LogprobRow {
  readonly row: number;
  readonly token: number;
  readonly top: number;
}

/**
 * Log-probabilities of the raw model distribution (log_softmax of the logits before temperature, penalties, bias
 * and masks: vLLM's default), for some rows of `logits` (any leading shape, the vocabulary last). Everything runs
 * on the device over those rows alone; what comes back per row is its log-sum-exp, its chosen token's logit and
 * an (id, logit) pair per alternative. The alternatives come from rounds of argmax, each round masking the id it
 * found, so a step reads a few numbers per row and round, never a row of the vocabulary. Every kernel involved
 * (gather, row reductions, argmax) computes each row alone, so a row's values do not depend on the other rows.
 */
export async function tokenLogprobs(logits: Tensor, rows: readonly LogprobRow[]): Promise<TokenLogprob[]> {
  if (rows.length === 0) return [];
  const vocab = logits.shape[logits.rank - 1]!;
  const device = logits.device;
  const count = rows.length;
  const int32 = { dtype: 'int32' as const, device };
  const table = reshape(logits, [logits.numel / vocab, vocab]);
  // A float32 buffer of its own ([count, vocab]): the rounds below overwrite the ids they have found.
  const x = to(embedding(tensor(rows.map((r) => r.row), [count], int32), table), { dtype: 'float32' });
  const rowMax = max(x, 1, true);
  const lse = add(rowMax, log(sum(exp(sub(x, rowMax)), 1, true)));
  const chosen = embedding(tensor(rows.map((r, i) => i * vocab + r.token), [count], int32), reshape(x, [count * vocab, 1]));
  const backend = getBackend(device);
  const ids: Int32Array[] = [];
  const values: Tensor[] = [];
  const rounds = Math.max(...rows.map((r) => r.top));
  for (let k = 0; k < rounds; k++) {
    values.push(max(x, 1));
    const found = await argmax(x).intData();
    ids.push(found);
    for (let i = 0; i < count; i++) backend.fill(x.buffer, x.offset + i * vocab + found[i]!, 1, -Infinity);
  }
  const lseHost = await lse.data();
  const chosenHost = await chosen.data();
  const valuesHost = await Promise.all(values.map((v) => v.data()));
  return rows.map((r, i) => ({
    token: r.token,
    logprob: chosenHost[i]! - lseHost[i]!,
    top: Array.from({ length: r.top }, (_, k) => ({ token: ids[k]![i]!, logprob: valuesHost[k]![i]! - lseHost[i]! })),
  }));
}
