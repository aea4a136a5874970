// RMSNorm over the last dimension of [rows, cols], forward and backward.
//
//   forward:  r = 1 / sqrt(mean_j x_j^2 + eps)          (float32, saved per row for the backward)
//             n_j = x_j * r, rounded to bfloat16 when x is not float32 (transformers casts the normalised
//             value back to the input dtype before the weight multiply; the CPU reference rounds to bf16)
//             y_j = w_j * n_j
//   backward: dx_j = r * w_j * dy_j - x_j * r^3 * (sum_k w_k * dy_k * x_k) / cols
//             dw_j = sum_rows dy_j * x_j * r            (partial sums per row chunk, then reduce_cols)
//
// forward and backward_dx take a row per block row: blockDim.y == 1 gives a whole block to each row (wide
// rows), blockDim = (32, y) a warp to each row (rows of at most 1024, such as per-head q/k norms), so short
// rows do not pay two block barriers each. Which one a shape gets depends on cols only (launchRms).

// Sum over the threads that share a row: the warp when rows are warp-wide, else the whole block.
__device__ __forceinline__ float row_sum(float v, float* scratch) { return blockDim.y > 1 ? warp_sum(v) : block_sum(v, scratch); }

#define RMS_ROWS(r, rows) for (i64 r = (i64)blockIdx.x * blockDim.y + threadIdx.y; r < (rows); r += (i64)gridDim.x * blockDim.y)

extern "C" __global__ void rmsnorm_forward(const void* x, int xDt, const void* w, int wDt, void* y, int yDt, void* rstd, int rstdDt,
                                           i64 rows, i64 cols, double eps, int roundBf16) {
  __shared__ float scratch[32];
  RMS_ROWS(r, rows) {
    const i64 base = r * cols;
    float ss = 0.0f;
    for (i64 j = threadIdx.x; j < cols; j += blockDim.x) {
      float v = load_f(x, xDt, base + j);
      ss += v * v;
    }
    ss = row_sum(ss, scratch);
    // As the CPU: mean rounded to float32, then 1/sqrt(mean + eps) in float64, rounded to float32.
    const float inv = (float)(1.0 / sqrt((double)(ss / (float)cols) + eps));
    if (threadIdx.x == 0) store_f(rstd, rstdDt, r, inv);
    for (i64 j = threadIdx.x; j < cols; j += blockDim.x) {
      float n = load_f(x, xDt, base + j) * inv;
      if (roundBf16) n = bf16_to_f32(f32_to_bf16(n));
      store_f(y, yDt, base + j, load_f(w, wDt, j) * n);
    }
  }
}

extern "C" __global__ void rmsnorm_backward_dx(const void* x, int xDt, const void* w, int wDt, const void* rstd, int rstdDt, const void* dy, int dyDt,
                                               void* dx, int dxDt, i64 rows, i64 cols) {
  __shared__ float scratch[32];
  RMS_ROWS(r, rows) {
    const i64 base = r * cols;
    const float inv = load_f(rstd, rstdDt, r);
    float dot = 0.0f;
    for (i64 j = threadIdx.x; j < cols; j += blockDim.x) dot += load_f(w, wDt, j) * load_f(dy, dyDt, base + j) * load_f(x, xDt, base + j);
    dot = row_sum(dot, scratch);
    const float k = inv * inv * inv * dot / (float)cols;
    for (i64 j = threadIdx.x; j < cols; j += blockDim.x) {
      store_f(dx, dxDt, base + j, inv * load_f(w, wDt, j) * load_f(dy, dyDt, base + j) - k * load_f(x, xDt, base + j));
    }
  }
}

// partial[c, j] = sum over rows r in chunk c of dy[r, j] * x[r, j] * rstd[r]. Blocks of 32 x 8 threads:
// blockIdx.x picks 32 adjacent columns, blockIdx.y a chunk of `chunkRows` rows split eight ways by threadIdx.y.
extern "C" __global__ void rmsnorm_backward_dw_partial(const void* x, int xDt, const void* rstd, int rstdDt, const void* dy, int dyDt,
                                                       float* partial, i64 rows, i64 cols, i64 chunkRows) {
  __shared__ float part[8][33];
  const i64 col = (i64)blockIdx.x * 32 + threadIdx.x;
  const i64 r0 = (i64)blockIdx.y * chunkRows;
  const i64 r1 = min_i64(rows, r0 + chunkRows);
  float acc = 0.0f;
  if (col < cols) {
    for (i64 r = r0 + threadIdx.y; r < r1; r += blockDim.y) {
      acc += load_f(dy, dyDt, r * cols + col) * load_f(x, xDt, r * cols + col) * load_f(rstd, rstdDt, r);
    }
  }
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    for (int k = 1; k < blockDim.y; ++k) acc += part[k][threadIdx.x];
    partial[(i64)blockIdx.y * cols + col] = acc;
  }
}
