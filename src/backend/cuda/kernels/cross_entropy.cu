// Cross-entropy of logits [rows, vocab] against integer labels, forward and backward.
//
//   forward:  lse_r  = log sum_j exp(x_rj)              (written for every row, ignored ones too)
//             loss_r = lse_r - x_{r, label_r}, or 0 where label_r == ignoreIndex
//   backward: dx_rj  = (exp(x_rj - lse_r) - [j == label_r]) * scale_r, or 0 where label_r == ignoreIndex
//
// The forward reads each row once with an online log-sum-exp (running max and rescaled sum per thread, merged
// across the block), so nothing but two floats per row is ever held in float32. A label outside [0, vocab)
// that is not ignoreIndex reports STATUS_LABEL and yields a NaN loss.

extern "C" __global__ void cross_entropy_forward(const void* logits, int xDt, const void* labels, int labDt, void* losses, int lossDt,
                                                 void* lse, int lseDt, i64 rows, i64 vocab, i64 ignoreIndex, volatile int* status) {
  __shared__ float scratch[64];
  for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const i64 base = r * vocab;
    MaxSum st{-F32_INF, 0.0f};
    for (i64 j = threadIdx.x; j < vocab; j += blockDim.x) st = maxsum_add(st, load_f(logits, xDt, base + j));
    st = block_maxsum(st, scratch);
    if (threadIdx.x == 0) {
      const double l = (double)st.m + log((double)st.s);
      store_f(lse, lseDt, r, (float)l);
      const i64 y = load_index(labels, labDt, r);
      float loss;
      if (y == ignoreIndex) {
        loss = 0.0f;
      } else if (y < 0 || y >= vocab) {
        report_status(status, STATUS_LABEL, (int)y, (int)vocab, (int)ignoreIndex);
        loss = F32_NAN;
      } else {
        loss = (float)(l - (double)load_f(logits, xDt, base + y));
      }
      store_f(losses, lossDt, r, loss);
    }
  }
}

// blockIdx.x covers vocab in chunks of blockDim.x * 4; blockIdx.y strides over rows. dlogits may alias logits.
extern "C" __global__ void cross_entropy_backward(const void* logits, int xDt, const void* lse, int lseDt, const void* labels, int labDt,
                                                  const void* scale, int scaleDt, void* dlogits, int dDt, i64 rows, i64 vocab, i64 ignoreIndex) {
  for (i64 r = blockIdx.y; r < rows; r += gridDim.y) {
    const i64 base = r * vocab;
    const i64 y = load_index(labels, labDt, r);
    const float l = load_f(lse, lseDt, r);
    const float k = load_f(scale, scaleDt, r);
    const bool ignored = y == ignoreIndex;
    const i64 chunk = (i64)blockDim.x * 4;
    const i64 end = min_i64(vocab, ((i64)blockIdx.x + 1) * chunk);
    for (i64 j = (i64)blockIdx.x * chunk + threadIdx.x; j < end; j += blockDim.x) {
      float g = 0.0f;
      if (!ignored) {
        g = expf(load_f(logits, xDt, base + j) - l) * k;
        if (j == y) g -= k;
      }
      store_f(dlogits, dDt, base + j, g);
    }
  }
}
