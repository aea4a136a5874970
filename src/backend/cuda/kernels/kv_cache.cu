// Paged KV cache for incremental decoding (vLLM's PagedAttention layout; PagedKvArgs in backend.ts).
//
// Pools are [poolBlocks, kvHeads, blockSize, headDim]; position p of batch row b lives in pool block
// table[b * maxBlocks + p / blockSize], slot p % blockSize. Every kernel reads and writes a row's own blocks only,
// in an order fixed by that row's length, so a row's bits never depend on the rest of the batch.

#define PAGED_WARPS 4
#define PAGED_KEYS_PER_STEP 32
// headDim <= 32 * PAGED_DIMS_PER_LANE
#define PAGED_DIMS_PER_LANE 8

// One thread per element of the step's new keys and values [batch, kvHeads, seq, headDim], both written.
extern "C" __global__ void paged_kv_write(const void* k, const void* v, int srcDt, void* kPool, void* vPool, int poolDt,
                                          const int* table, const int* lengths,
                                          i64 kB, i64 kH, i64 kR, i64 vB, i64 vH, i64 vR,
                                          int batch, int kvHeads, int seq, int headDim, int blockSize, int maxBlocks) {
  const i64 n = (i64)batch * seq * kvHeads * headDim;
  GRID_STRIDE(i, n) {
    const int d = (int)(i % headDim);
    i64 r = i / headDim;
    const int h = (int)(r % kvHeads);
    r /= kvHeads;
    const int t = (int)(r % seq);
    const int b = (int)(r / seq);
    const int pos = lengths[b] - seq + t;
    const i64 block = table[(i64)b * maxBlocks + pos / blockSize];
    const i64 dst = ((block * kvHeads + h) * blockSize + pos % blockSize) * headDim + d;
    store_f(kPool, poolDt, dst, load_f(k, srcDt, b * kB + h * kH + t * kR + d));
    store_f(vPool, poolDt, dst, load_f(v, srcDt, b * vB + h * vH + t * vR + d));
  }
}

// Grid (heads, seq, batch), PAGED_WARPS warps: one CTA per query. Query t of row b sits at position
// pos = lengths[b] - seq + t and sees positions first..pos: first = 0, or with a sliding window W > 0,
// max(0, pos - W + 1) (positions j with pos - j < W). Warp w takes keys in chunks of 32 (first + w*32,
// first + w*32 + 128, ...): lane j scores key j of the chunk alone (a dot product over headDim in index order,
// times scale: r), soft-capped when softcap C > 0 (C tanh(r / C); no gradient is needed here), the chunk's softmax
// terms join the warp's running max / sum / output (online softmax, float32), and each lane accumulates the output
// dimensions lane, lane + 32, ... over the chunk's keys in order. The warps' partial results merge in warp order at
// the end. Everything depends on the row's own length alone, so rows stay batch-invariant; with W = 0 and C = 0
// this is the arithmetic the kernel ran before either existed.
extern "C" __global__ void paged_attention(const void* q, void* out, const void* kPool, const void* vPool, int dt,
                                           const int* table, const int* lengths,
                                           i64 qB, i64 qH, i64 qR, i64 oB, i64 oH, i64 oR,
                                           int heads, int kvHeads, int seq, int headDim, int blockSize, int maxBlocks,
                                           float scale, int window, float softcap, const float* sinks) {
  __shared__ float qs[32 * PAGED_DIMS_PER_LANE];
  __shared__ float warpMax[PAGED_WARPS];
  __shared__ float warpSum[PAGED_WARPS];
  __shared__ float warpOut[PAGED_WARPS][32 * PAGED_DIMS_PER_LANE];
  const int h = blockIdx.x;
  const int t = blockIdx.y;
  const int b = blockIdx.z;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int kvh = h / (heads / kvHeads);
  const int pos = lengths[b] - seq + t;
  const int* row = table + (i64)b * maxBlocks;
  for (int d = threadIdx.x; d < headDim; d += blockDim.x) qs[d] = load_f(q, dt, b * qB + h * qH + t * qR + d);
  __syncthreads();

  float m = -F32_INF;
  float l = 0.f;
  float acc[PAGED_DIMS_PER_LANE];
#pragma unroll
  for (int i = 0; i < PAGED_DIMS_PER_LANE; i++) acc[i] = 0.f;

  const int first = window > 0 ? max(0, pos - window + 1) : 0;
  for (int j0 = first + warp * PAGED_KEYS_PER_STEP; j0 <= pos; j0 += PAGED_WARPS * PAGED_KEYS_PER_STEP) {
    const int j = j0 + lane;
    const bool live = j <= pos;
    i64 at = 0;
    float s = -F32_INF;
    if (live) {
      at = (((i64)row[j / blockSize] * kvHeads + kvh) * blockSize + j % blockSize) * headDim;
      float dot = 0.f;
      for (int d = 0; d < headDim; d++) dot += qs[d] * load_f(kPool, dt, at + d);
      s = dot * scale;
      if (softcap > 0.f) s = softcap * tanhf(s / softcap);
    }
    const float mNew = fmaxf(m, warp_max(s));
    const float p = live ? expf(s - mNew) : 0.f;
    const float correction = expf(m - mNew);
    l = l * correction + warp_sum(p);
    const int count = min(PAGED_KEYS_PER_STEP, pos - j0 + 1);
#pragma unroll
    for (int i = 0; i < PAGED_DIMS_PER_LANE; i++) acc[i] *= correction;
    for (int jj = 0; jj < count; jj++) {
      const float pj = __shfl_sync(0xffffffffu, p, jj);
      const i64 aj = __shfl_sync(0xffffffffu, at, jj);
#pragma unroll
      for (int i = 0; i < PAGED_DIMS_PER_LANE; i++) {
        const int d = lane + 32 * i;
        if (d < headDim) acc[i] += pj * load_f(vPool, dt, aj + d);
      }
    }
    m = mNew;
  }

  if (lane == 0) {
    warpMax[warp] = m;
    warpSum[warp] = l;
  }
#pragma unroll
  for (int i = 0; i < PAGED_DIMS_PER_LANE; i++) {
    const int d = lane + 32 * i;
    if (d < headDim) warpOut[warp][d] = acc[i];
  }
  __syncthreads();
  float M = -F32_INF;
  for (int w = 0; w < PAGED_WARPS; w++) M = fmaxf(M, warpMax[w]);
  // An attention sink (one logit of head h, no value row) joins the max and the normaliser once.
  if (sinks) M = fmaxf(M, sinks[h]);
  float L = sinks ? expf(sinks[h] - M) : 0.f;
  for (int w = 0; w < PAGED_WARPS; w++) L += warpSum[w] * expf(warpMax[w] - M);
  for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
    float o = 0.f;
    for (int w = 0; w < PAGED_WARPS; w++) o += warpOut[w][d] * expf(warpMax[w] - M);
    store_f(out, dt, b * oB + h * oH + t * oR + d, o / L);
  }
}
