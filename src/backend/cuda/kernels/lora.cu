// Multi-adapter LoRA for inference (Punica's BGMV): every row of a batch through the adapter it names.
//
//   h[t]      = sum_c A[t, c] * x[row, c]                     t < rank        (A [rank, in] of the row's adapter)
//   out[row, j] = base[row, j] + scale * sum_t B[j, t] * h[t]                 (B [out, rank]); = base[row, j] at rank 0
//
// The host writes one RowLora per row (a row without an adapter has rank 0 and null pointers). Grid: x over blocks of
// LORA_OUTPUTS_PER_BLOCK outputs, y over rows (grid-stride past 65535); each block recomputes its row's h into shared
// memory (rank floats), one warp per t with a fixed lane order, then each thread sums its outputs over t in order.
// So a row's bits depend on its own x, base and adapter only, never on the other rows of the batch, as on the CPU.

#define LORA_OUTPUTS_PER_BLOCK 1024

// 32 bytes, little-endian; written by CudaBackend.multiLora (ROW_LORA_BYTES).
struct RowLora {
  u64 a;
  u64 b;
  float scale;
  int rank;
  int aDt;
  int bDt;
};

extern "C" __global__ void multi_lora_forward(const RowLora* table, const void* x, int xDt, const void* base, int baseDt, void* out, int outDt,
                                              i64 rows, i64 inFeatures, i64 outFeatures) {
  extern __shared__ float h[];
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int warps = blockDim.x / 32;
  const i64 j0 = (i64)blockIdx.x * LORA_OUTPUTS_PER_BLOCK;
  const i64 j1 = min_i64(j0 + LORA_OUTPUTS_PER_BLOCK, outFeatures);
  for (i64 row = blockIdx.y; row < rows; row += gridDim.y) {
    const RowLora e = table[row];
    const void* a = (const void*)e.a;
    const void* b = (const void*)e.b;
    for (int t = warp; t < e.rank; t += warps) {
      float s = 0.f;
      for (i64 c = lane; c < inFeatures; c += 32) s += load_f(a, e.aDt, t * inFeatures + c) * load_f(x, xDt, row * inFeatures + c);
      s = warp_sum(s);
      if (lane == 0) h[t] = s;
    }
    __syncthreads();
    for (i64 j = j0 + threadIdx.x; j < j1; j += blockDim.x) {
      const float y = load_f(base, baseDt, row * outFeatures + j);
      float acc = 0.f;
      for (int t = 0; t < e.rank; t++) acc += load_f(b, e.bDt, j * e.rank + t) * h[t];
      store_f(out, outDt, row * outFeatures + j, e.rank == 0 ? y : y + e.scale * acc);
    }
    // h is rewritten for the next row only after every thread has read it.
    __syncthreads();
  }
}
