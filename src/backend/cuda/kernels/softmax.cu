// Row softmax over the last dimension of [rows, cols], forward and backward.
//
//   forward:  y_j = exp(x_j - m) / sum_k exp(x_k - m),  m = max_k x_k   (a row of -inf gives zeros)
//   backward: dx_j = y_j * (dy_j - sum_k dy_k * y_k)
//
// One block per row. The forward reads the row twice: one pass keeps the running max and the rescaled sum
// (online softmax), the second writes the outputs.

extern "C" __global__ void softmax_forward(const void* x, int xDt, void* y, int yDt, i64 rows, i64 cols) {
  __shared__ float scratch[64];
  for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const i64 base = r * cols;
    MaxSum st{-F32_INF, 0.0f};
    for (i64 j = threadIdx.x; j < cols; j += blockDim.x) st = maxsum_add(st, load_f(x, xDt, base + j));
    st = block_maxsum(st, scratch);
    if (st.m == -F32_INF) {
      for (i64 j = threadIdx.x; j < cols; j += blockDim.x) store_f(y, yDt, base + j, 0.0f);
      continue;
    }
    const float inv = 1.0f / st.s;
    for (i64 j = threadIdx.x; j < cols; j += blockDim.x) store_f(y, yDt, base + j, expf(load_f(x, xDt, base + j) - st.m) * inv);
  }
}

extern "C" __global__ void softmax_backward(const void* y, int yDt, const void* dy, int dyDt, void* dx, int dxDt, i64 rows, i64 cols) {
  __shared__ float scratch[32];
  for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const i64 base = r * cols;
    float dot = 0.0f;
    for (i64 j = threadIdx.x; j < cols; j += blockDim.x) dot += load_f(y, yDt, base + j) * load_f(dy, dyDt, base + j);
    dot = block_sum(dot, scratch);
    for (i64 j = threadIdx.x; j < cols; j += blockDim.x) {
      store_f(dx, dxDt, base + j, load_f(y, yDt, base + j) * (load_f(dy, dyDt, base + j) - dot));
    }
  }
}
