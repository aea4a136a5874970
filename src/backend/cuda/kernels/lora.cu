// Multi-adapter LoRA for inference (Punica's BGMV) in one launch: every row of a batch through the adapter it names.
//
//   h[t]        = sum_c A[t, c] * x[row, c]                   t < rank        (A [rank, in] of the row's adapter)
//   out[row, j] = base[row, j] + scale * sum_t B[j, t] * h[t]                 (B [out, rank]); = base[row, j] at rank 0
//
// The host writes one RowLora per row (a row without an adapter has rank 0 and null pointers). Grid: x over blocks
// of LORA_OUTPUTS_PER_BLOCK outputs, y over rows (grid-stride past 65535). Each block first computes its row's h
// into shared memory: thread i sums the features c = i, i + blockDim, ... for up to LORA_RANK_CHUNK ranks at once
// (x read once per feature, A's rows read coalesced), each rank's per-thread sums reduced in a fixed lane order
// (warp butterfly) and warp order. Then each thread sums its outputs over t in order. The blocks of one row repeat
// the (small) h computation rather than pay a second launch. A row's bits depend on its own x, base and adapter
// only, never on the other rows of the batch, as on the CPU. Loads are specialised by dtype once per row (the
// switch sits outside the loops).

#define LORA_RANK_CHUNK 16
#define LORA_OUTPUTS_PER_BLOCK 1024
// Ranks h holds in shared memory at most (CudaBackend.multiLora checks it).
#define LORA_MAX_RANK 1024

// 32 bytes, little-endian; written by CudaBackend.multiLora (ROW_LORA_BYTES).
struct RowLora {
  u64 a;
  u64 b;
  float scale;
  int rank;
  int aDt;
  int bDt;
};

template <int DT> __device__ __forceinline__ float lora_load(const void* p, i64 i);
template <> __device__ __forceinline__ float lora_load<DT_F32>(const void* p, i64 i) { return ((const float*)p)[i]; }
template <> __device__ __forceinline__ float lora_load<DT_BF16>(const void* p, i64 i) { return bf16_to_f32(((const u16*)p)[i]); }
template <> __device__ __forceinline__ float lora_load<DT_F16>(const void* p, i64 i) { return f16_to_f32(((const u16*)p)[i]); }

// Whether element i of a buffer of dtype dt starts a 16-byte aligned group of eight.
__device__ __forceinline__ bool lora_aligned8(const void* p, int dt, i64 i) {
  const u64 bytes = dt == DT_F32 ? 4 : 2;
  return (((u64)p + (u64)i * bytes) & 15) == 0;
}

// The vectorised variant: eight consecutive features per thread and step (inFeatures a multiple of 8, x's row and
// A 16-byte aligned: decided per row, from that row's own addresses).
template <int XT, int AT>
__device__ __forceinline__ void lora_shrink_sums8(const void* a, const void* x, i64 row, i64 inFeatures, int t0, int n, float* acc) {
  for (i64 c = 8 * (i64)threadIdx.x; c < inFeatures; c += 8 * (i64)blockDim.x) {
    float xv[8];
    load8(x, XT, (row * inFeatures + c) / 8, xv);
#pragma unroll
    for (int i = 0; i < LORA_RANK_CHUNK; i++) {
      if (i < n) {
        float av[8];
        load8(a, AT, ((t0 + i) * inFeatures + c) / 8, av);
        float s = 0.f;
#pragma unroll
        for (int k = 0; k < 8; k++) s += av[k] * xv[k];
        acc[i] += s;
      }
    }
  }
}

// This thread's share of ranks t0 .. t0 + n - 1 over features threadIdx.x, threadIdx.x + blockDim.x, ...
template <int XT, int AT>
__device__ __forceinline__ void lora_shrink_sums(const void* a, const void* x, i64 row, i64 inFeatures, int t0, int n, float* acc) {
  for (i64 c = threadIdx.x; c < inFeatures; c += blockDim.x) {
    const float xv = lora_load<XT>(x, row * inFeatures + c);
#pragma unroll
    for (int i = 0; i < LORA_RANK_CHUNK; i++) {
      if (i < n) acc[i] += lora_load<AT>(a, (t0 + i) * inFeatures + c) * xv;
    }
  }
}

#define LORA_SHRINK_CASE(XT, AT) \
  case (XT) * 3 + (AT):                                                              \
    if (vec) lora_shrink_sums8<XT, AT>(a, x, row, inFeatures, t0, n, acc);           \
    else lora_shrink_sums<XT, AT>(a, x, row, inFeatures, t0, n, acc);                \
    break;

// h[0 .. rank) of one row into shared memory; every thread of the block takes part. Ends with a barrier.
__device__ __forceinline__ void lora_shrink_row(const RowLora& e, const void* x, int xDt, i64 row, i64 inFeatures, float* h, float (*partial)[LORA_RANK_CHUNK]) {
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int warps = blockDim.x / 32;
  const void* a = (const void*)e.a;
  const bool vec = inFeatures % 8 == 0 && lora_aligned8(x, xDt, row * inFeatures) && lora_aligned8(a, e.aDt, 0);
  for (int t0 = 0; t0 < e.rank; t0 += LORA_RANK_CHUNK) {
    const int n = min(LORA_RANK_CHUNK, e.rank - t0);
    float acc[LORA_RANK_CHUNK];
#pragma unroll
    for (int i = 0; i < LORA_RANK_CHUNK; i++) acc[i] = 0.f;
    switch (xDt * 3 + e.aDt) {
      LORA_SHRINK_CASE(DT_F32, DT_F32)
      LORA_SHRINK_CASE(DT_F32, DT_BF16)
      LORA_SHRINK_CASE(DT_F32, DT_F16)
      LORA_SHRINK_CASE(DT_BF16, DT_F32)
      LORA_SHRINK_CASE(DT_BF16, DT_BF16)
      LORA_SHRINK_CASE(DT_BF16, DT_F16)
      LORA_SHRINK_CASE(DT_F16, DT_F32)
      LORA_SHRINK_CASE(DT_F16, DT_BF16)
      LORA_SHRINK_CASE(DT_F16, DT_F16)
    }
#pragma unroll
    for (int i = 0; i < LORA_RANK_CHUNK; i++) {
      const float s = warp_sum(acc[i]);
      if (lane == 0) partial[warp][i] = s;
    }
    __syncthreads();
    if (threadIdx.x < n) {
      float s = 0.f;
      for (int w = 0; w < warps; w++) s += partial[w][threadIdx.x];
      h[t0 + threadIdx.x] = s;
    }
    // partial is rewritten by the next chunk only after it has been read; h is complete after the last chunk.
    __syncthreads();
  }
}

// Each output sums its rank terms in order; with a rank that is a multiple of 8 and B 16-byte aligned (so every row
// of B is), eight at a time through vector loads, in the same order.
template <int BT>
__device__ __forceinline__ void lora_expand_row(const RowLora& e, const float* h, const void* base, int baseDt, void* out, int outDt, i64 row, i64 j0, i64 j1, i64 outFeatures) {
  const void* b = (const void*)e.b;
  const bool vec = e.rank % 8 == 0 && lora_aligned8(b, BT, 0);
  for (i64 j = j0 + threadIdx.x; j < j1; j += blockDim.x) {
    const float y = load_f(base, baseDt, row * outFeatures + j);
    float acc = 0.f;
    if (vec) {
      for (int t = 0; t < e.rank; t += 8) {
        float bv[8];
        load8(b, BT, (j * e.rank + t) / 8, bv);
#pragma unroll
        for (int k = 0; k < 8; k++) acc += bv[k] * h[t + k];
      }
    } else {
#pragma unroll 8
      for (int t = 0; t < e.rank; t++) acc += lora_load<BT>(b, j * e.rank + t) * h[t];
    }
    store_f(out, outDt, row * outFeatures + j, y + e.scale * acc);
  }
}

extern "C" __global__ void multi_lora_forward(const RowLora* table, const void* x, int xDt, const void* base, int baseDt, void* out, int outDt,
                                              i64 rows, i64 inFeatures, i64 outFeatures) {
  __shared__ float partial[32][LORA_RANK_CHUNK];
  __shared__ float h[LORA_MAX_RANK];
  const i64 j0 = (i64)blockIdx.x * LORA_OUTPUTS_PER_BLOCK;
  const i64 j1 = min_i64(j0 + LORA_OUTPUTS_PER_BLOCK, outFeatures);
  for (i64 row = blockIdx.y; row < rows; row += gridDim.y) {
    const RowLora e = table[row];
    if (e.rank == 0) {
      for (i64 j = j0 + threadIdx.x; j < j1; j += blockDim.x) store_f(out, outDt, row * outFeatures + j, load_f(base, baseDt, row * outFeatures + j));
      continue;
    }
    lora_shrink_row(e, x, xDt, row, inFeatures, h, partial);
    if (e.bDt == DT_F32) lora_expand_row<DT_F32>(e, h, base, baseDt, out, outDt, row, j0, j1, outFeatures);
    else if (e.bDt == DT_BF16) lora_expand_row<DT_BF16>(e, h, base, baseDt, out, outDt, row, j0, j1, outFeatures);
    else lora_expand_row<DT_F16>(e, h, base, baseDt, out, outDt, row, j0, j1, outFeatures);
    // h is rewritten for the next row only after every thread has read it.
    __syncthreads();
  }
}
