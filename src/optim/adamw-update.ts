import type { AdamWArgs } from '../backend/backend.js';
import { backendOf } from '../ops/index.js';
import { kernels } from '../ops/composed-kernels.js';
import type { Tensor } from '../tensor/tensor.js';

export type { AdamWArgs } from '../backend/backend.js';

/**
 * One in-place AdamW update of `param` and its moments through the backend's `adamw` kernel (or ops/' composition
 * of it from elementwise kernels), which carries torch's single-tensor arithmetic. The kernel reads every buffer
 * from element 0, so all four tensors must be contiguous views starting at their buffer's first element.
 */
export function adamwUpdate(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor, args: AdamWArgs): void {
  for (const [what, t] of [['parameter', param], ['gradient', grad], ['exp_avg', expAvg], ['exp_avg_sq', expAvgSq]] as const) {
    if (t.numel !== param.numel) throw new Error(`AdamW: the ${what} has ${t.numel} elements but the parameter has ${param.numel}.`);
    if (!t.isContiguous() || t.offset !== 0) throw new Error(`AdamW: the ${what} must be a contiguous tensor that owns its storage from element 0.`);
    if (t.device !== param.device) throw new Error(`AdamW: the ${what} is on ${t.device} but the parameter is on ${param.device}.`);
  }
  kernels(backendOf(param)).adamw(param.buffer, grad.buffer, expAvg.buffer, expAvgSq.buffer, param.numel, args);
}
