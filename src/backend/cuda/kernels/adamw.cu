// One fused AdamW step in place (torch.optim.AdamW, single-tensor path), every operation rounded to float32
// in the same order as torch and the CPU reference, so the update is bit-identical where IEEE allows:
//
//   p  = p * (1 - lr * wd)
//   m  = lerp(m, g, 1 - beta1)          torch's lerp: w < 0.5 ? m + w * (g - m) : g - (g - m) * (1 - w)
//   v  = v * beta2 + (1 - beta2) * g^2
//   p  = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//
// The host folds the step-dependent scalars (decay, w1 = 1 - beta1, w2 = 1 - beta2, stepSize, bc2 =
// sqrt(1 - beta2^t)) to float32 exactly as the CPU does. __f*_rn intrinsics keep each operation separately
// rounded (never contracted to an FMA), and sqrt and division are IEEE-exact (NVRTC's defaults).

extern "C" __global__ void adamw(void* param, int pDt, const void* grad, int gDt, void* expAvg, int mDt, void* expAvgSq, int vDt, i64 n,
                                 float decay, float w1, float b2, float w2, float stepSize, float bc2, float eps) {
  const float oneMinusW1 = __fsub_rn(1.0f, w1);
  GRID_STRIDE(i, n) {
    const float p = __fmul_rn(load_f(param, pDt, i), decay);
    const float g = load_f(grad, gDt, i);
    const float m0 = load_f(expAvg, mDt, i);
    const float diff = __fsub_rn(g, m0);
    const float m = w1 < 0.5f ? __fadd_rn(m0, __fmul_rn(w1, diff)) : __fsub_rn(g, __fmul_rn(diff, oneMinusW1));
    const float v = __fadd_rn(__fmul_rn(load_f(expAvgSq, vDt, i), b2), __fmul_rn(w2, __fmul_rn(g, g)));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), bc2), eps);
    store_f(param, pDt, i, __fadd_rn(p, __fmul_rn(-stepSize, __fdiv_rn(m, denom))));
    store_f(expAvg, mDt, i, m);
    store_f(expAvgSq, vDt, i, v);
  }
}
