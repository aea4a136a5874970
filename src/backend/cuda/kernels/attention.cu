// Fused attention with grouped-query heads, forward and backward (FlashAttention-2), never holding the
// [seqQ, seqK] scores. For batch b, query head h (key/value head hk = h / (H / Hkv)), query i and key j, with
// off = S - T (query i sits at key position p_i = off + i), m_j the additive key mask, a sliding window W
// (`window`, 0: none) and a soft-cap C (`softcap`, 0: none):
//
//   visible(i, j) = (!causal || j <= p_i) && (W == 0 || p_i - j < W)
//   r_ij  = scale * q_i . k_j                   (the raw scaled score)
//   c_ij  = C tanh(r_ij / C), or r_ij when C = 0
//   s_ij  = c_ij + m_j                          (-inf where !visible(i, j) or the mask hides key j)
//   lse_i = log (sum_j exp(s_ij) + exp(sink_h)) (sink_h: head h's attention-sink logit (gpt-oss), -inf without
//                                               sinks; -inf when query i sees no key and no sink; with no key seen
//                                               its output row is 0)
//   p_ij  = exp(s_ij - lse_i),   o_i = sum_j p_ij v_j
//   D_i   = dO_i . o_i,          ds_ij = p_ij (dO_i . v_j - D_i)      (= dL/ds_ij = dL/dc_ij)
//   dr_ij = ds_ij dc_ij/dr_ij = ds_ij (1 - tanh^2(r_ij / C)) = ds_ij (1 - (c_ij / C)^2), or ds_ij when C = 0
//   dq_i  = scale * sum_j dr_ij k_j
//   dk_j  = scale * sum_{h in group, i} dr_ij q_i,   dv_j = sum_{h in group, i} p_ij dO_i
//
// (d tanh(x)/dx = 1 - tanh^2(x) and x = r / C, so dc/dr = C (1 - tanh^2(r / C)) / C.) With W = 0 and C = 0 every
// kernel runs the arithmetic it ran before either existed, to the bit.
//
// Forward: one CTA per (query tile, head, batch) walks the key tiles with an online softmax (a running max and
// sum rescale the partial output when the max moves) and writes o and lse; with a window it starts at the tile
// of the first key its first query sees. Backward: D_i first; then one CTA per (key tile, key/value head, batch)
// walks every query head of its group and every query tile that can see its keys (causality bounds them below,
// the window above), keeping dk and dv in registers (so no atomics for them), recomputing p from lse. A sink
// has no value row and is a frozen weight, so it changes only lse: the backward is the same kernel with or without.
//
// Two implementations of each:
// - tensor cores (mma.sync m16n8k16, bf16 or f16 storage, headDim 64, 128 or 256, rows 16-byte aligned): tiles
//   move global -> shared with cp.async, fragments shared -> registers with ldmatrix; scores, probabilities
//   and the output stay in registers (the score accumulators are reused as the A operand of P.V). At headDim
//   256 the forward reads Q's fragments from shared memory per key tile instead of holding them. The backward
//   comes in variants (query rows per tile, warps, one or two query-tile buffers; at headDim 256 two warps per
//   key group, each holding half of the dimensions of dK and dV), all in dynamic shared memory; the launcher
//   takes the fastest one the device's opt-in shared memory holds (see att_backward_mma). dq is accumulated
//   with float32 atomics into scratch [B, H, T, D] that attention_dq_convert scales and rounds.
//   The soft-cap is compiled into kernels of its own (attention_{forward,backward}_mma_softcap_*), and tiles
//   that no bound cuts through (most of them) run element loops without masking, so neither feature costs the
//   plain kernels a per-element test.
// - SIMT for every float dtype and headDim <= 256: a warp owns a few rows; for a tile of up to 32 partners,
//   lane = partner for the dot products and lane = dimension for the accumulations. The backward splits into
//   a query-side pass (dq) and a key-side pass (dk, dv), so it needs no atomics.
// Both accumulate in float32. Every operand is a [B, heads, rows, D] view with element strides (sb, sh, st)
// and D contiguous; lse and D_i are float32 [B, H, T]; the key mask is float32 [B, S] or null.

#define ATT_WARPS 4
#define ATT_THREADS (ATT_WARPS * 32)
#define ATT_MAX_RPW 4
#define ATT_MAX_D 256
#define ATT_DCHUNKS (ATT_MAX_D / 32)
#define ATT_LOG2E 1.4426950408889634f
#define ATT_LN2 0.6931471805599453f
#define ATT_FULL 0xffffffffu
// Dynamic shared memory of the headDim-256 tensor-core forward (ATTENTION_MMA_256 in cuda-backend.ts): sK, sV, sQ
// [64][264] 16-bit.
#define ATT_FWD_SMEM_256 (3 * 64 * 264 * 2)

#define ATT_FWD_PARAMS                                                                                         \
  const void *q, const void *k, const void *v, void *o, float *lse, const float *mask, int dt, i64 qsb, i64 qsh, \
      i64 qst, i64 ksb, i64 ksh, i64 kst, i64 vsb, i64 vsh, i64 vst, i64 osb, i64 osh, i64 ost, int B, int H,     \
      int Hkv, int T, int S, int D, float scale, int causal, int window, float softcap, const float *sinks
#define ATT_FWD_ARGS                                                                                                \
  q, k, v, o, lse, mask, dt, qsb, qsh, qst, ksb, ksh, kst, vsb, vsh, vst, osb, osh, ost, B, H, Hkv, T, S, D, scale, causal, \
      window, softcap, sinks

// dq is the final gradient (SIMT) or float32 scratch [B, H, T, D] (tensor cores); dvec holds D_i.
#define ATT_BWD_PARAMS                                                                                              \
  const void *q, const void *k, const void *v, const void *o, const void *dout, const float *lse, float *dvec,        \
      const float *mask, void *dq, void *dk, void *dv, int dt, i64 qsb, i64 qsh, i64 qst, i64 ksb, i64 ksh, i64 kst,  \
      i64 vsb, i64 vsh, i64 vst, i64 osb, i64 osh, i64 ost, i64 gsb, i64 gsh, i64 gst, i64 dqsb, i64 dqsh, i64 dqst, \
      i64 dksb, i64 dksh, i64 dkst, i64 dvsb, i64 dvsh, i64 dvst, int B, int H, int Hkv, int T, int S, int D,         \
      float scale, int causal, int window, float softcap
#define ATT_BWD_ARGS                                                                                                    \
  q, k, v, o, dout, lse, dvec, mask, dq, dk, dv, dt, qsb, qsh, qst, ksb, ksh, kst, vsb, vsh, vst, osb, osh, ost, gsb, \
      gsh, gst, dqsb, dqsh, dqst, dksb, dksh, dkst, dvsb, dvsh, dvst, B, H, Hkv, T, S, D, scale, causal, window, softcap

// Whether the query at key position p sees key j through causality and the window (the key mask comes apart).
// Bitwise, not short-circuit, so that it compiles to selects rather than branches.
__device__ __forceinline__ bool att_visible(int j, int p, int causal, int window) {
  return ((!causal) | (j <= p)) & ((window <= 0) | (p - j < window));
}

// The first key the query at key position p sees: the window's first position, or 0.
__device__ __forceinline__ int att_first_key(int p, int window) { return window > 0 ? max(0, p - window + 1) : 0; }

// ---------------------------------------------------------------------------------------------------------
// SIMT
// ---------------------------------------------------------------------------------------------------------

// c = softcap * tanh(r / softcap) of a raw scaled score r (r itself when softcap is 0); t receives the tanh, so
// that dc/dr = 1 - t^2.
__device__ __forceinline__ float att_cap(float r, float softcap, float &t) {
  if (softcap > 0.0f) {
    t = tanhf(r / softcap);
    return softcap * t;
  }
  t = 0.0f;
  return r;
}

// Rows row0 .. row0+count-1 of one head (row stride st) into shared float rows `ld` apart; rows at or past
// `limit` are zero.
__device__ __forceinline__ void att_rows_to_shared(float *dst, int ld, const void *src, int dt, i64 base, i64 st, int row0, int count,
                                                   int limit, int D) {
  for (int e = threadIdx.x; e < count * D; e += blockDim.x) {
    const int r = e / D, d = e - r * D;
    dst[r * ld + d] = row0 + r < limit ? load_f(src, dt, base + (i64)(row0 + r) * st + d) : 0.0f;
  }
}

__device__ __forceinline__ float att_dot(const float *a, const float *b, int D) {
  float s = 0.0f;
  for (int d = 0; d < D; ++d) s = __fmaf_rn(a[d], b[d], s);
  return s;
}

// Shared memory (floats): sQ [4*rpw][D], then sK and sV [bc][D + 1] (lane = key reads a column of a padded
// row without bank conflicts). Grid: (ceil(T / (4*rpw)), H, B).
extern "C" __global__ void attention_forward_simt(ATT_FWD_PARAMS, int rpw, int bc) {
  extern __shared__ float att_smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, br = ATT_WARPS * rpw, ld = D + 1;
  float *sQ = att_smem, *sK = sQ + br * D, *sV = sK + bc * ld;
  const int b = blockIdx.z, h = blockIdx.y, hk = h / (H / Hkv), i0 = blockIdx.x * br, off = S - T;
  const i64 qb = b * qsb + h * qsh, kb = b * ksb + hk * ksh, vb = b * vsb + hk * vsh, ob = b * osb + h * osh;
  const float *maskRow = mask ? mask + (i64)b * S : nullptr;
  att_rows_to_shared(sQ, D, q, dt, qb, qst, i0, br, T, D);
  const int kEnd = causal ? min(S, off + min(T, i0 + br)) : S;
  float acc[ATT_MAX_RPW][ATT_DCHUNKS], m[ATT_MAX_RPW], l[ATT_MAX_RPW];
#pragma unroll
  // An attention sink (one logit of head h, no value row) starts every row's max and sum: exp(sink - sink) = 1.
  const float sink = sinks ? sinks[h] : -F32_INF;
  for (int r = 0; r < ATT_MAX_RPW; ++r) {
    m[r] = sink;
    l[r] = sinks ? 1.0f : 0.0f;
#pragma unroll
    for (int c = 0; c < ATT_DCHUNKS; ++c) acc[r][c] = 0.0f;
  }
  for (int j0 = att_first_key(off + i0, window); j0 < kEnd; j0 += bc) {
    __syncthreads();
    att_rows_to_shared(sK, ld, k, dt, kb, kst, j0, bc, S, D);
    att_rows_to_shared(sV, ld, v, dt, vb, vst, j0, bc, S, D);
    __syncthreads();
    const int j = j0 + lane;
#pragma unroll
    for (int r = 0; r < ATT_MAX_RPW; ++r) {
      const int lr = warp * rpw + r, i = i0 + lr;
      if (r >= rpw || i >= T) continue;
      float s = -F32_INF;
      if (lane < bc && j < S && att_visible(j, off + i, causal, window)) {
        float t;
        s = att_cap(att_dot(sQ + lr * D, sK + lane * ld, D) * scale, softcap, t) + (maskRow ? maskRow[j] : 0.0f);
      }
      const float mNew = fmaxf(m[r], warp_max(s));
      if (mNew == -F32_INF) continue;
      const float p = expf(s - mNew), corr = expf(m[r] - mNew);
      l[r] = l[r] * corr + warp_sum(p);
      m[r] = mNew;
#pragma unroll
      for (int c = 0; c < ATT_DCHUNKS; ++c) acc[r][c] *= corr;
      for (int jj = 0; jj < bc; ++jj) {
        const float pj = __shfl_sync(ATT_FULL, p, jj);
        if (pj == 0.0f) continue;
        const float *vr = sV + jj * ld;
#pragma unroll
        for (int c = 0; c < ATT_DCHUNKS; ++c) {
          const int d = lane + 32 * c;
          if (d < D) acc[r][c] = __fmaf_rn(pj, vr[d], acc[r][c]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < ATT_MAX_RPW; ++r) {
    const int i = i0 + warp * rpw + r;
    if (r >= rpw || i >= T) continue;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
#pragma unroll
    for (int c = 0; c < ATT_DCHUNKS; ++c) {
      const int d = lane + 32 * c;
      if (d < D) store_f(o, dt, ob + (i64)i * ost + d, acc[r][c] * inv);
    }
    if (lane == 0) lse[((i64)b * H + h) * T + i] = l[r] > 0.0f ? m[r] + logf(l[r]) : -F32_INF;
  }
}

// D_i = dO_i . o_i, one warp per query row (b, h, i). Grid: ceil(B*H*T / 4) blocks of 128 threads.
extern "C" __global__ void attention_backward_dot(ATT_BWD_PARAMS) {
  const i64 row = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (row >= (i64)B * H * T) return;
  const i64 i = row % T, h = (row / T) % H, b = row / ((i64)T * H);
  const i64 gb = b * gsb + h * gsh + i * gst, ob = b * osb + h * osh + i * ost;
  float s = 0.0f;
  for (int d = lane; d < D; d += 32) s = __fmaf_rn(load_f(dout, dt, gb + d), load_f(o, dt, ob + d), s);
  s = warp_sum(s);
  if (lane == 0) dvec[row] = s;
}

// dq, query side. Shared (floats): sQ, sG [4*rpw][D] (q and dO rows), then sK, sV [bc][D + 1].
// Grid: (ceil(T / (4*rpw)), H, B).
extern "C" __global__ void attention_backward_dq_simt(ATT_BWD_PARAMS, int rpw, int bc) {
  extern __shared__ float att_smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, br = ATT_WARPS * rpw, ld = D + 1;
  float *sQ = att_smem, *sG = sQ + br * D, *sK = sG + br * D, *sV = sK + bc * ld;
  const int b = blockIdx.z, h = blockIdx.y, hk = h / (H / Hkv), i0 = blockIdx.x * br, off = S - T;
  const i64 kb = b * ksb + hk * ksh, vb = b * vsb + hk * vsh, rowBase = ((i64)b * H + h) * T;
  const float *maskRow = mask ? mask + (i64)b * S : nullptr;
  att_rows_to_shared(sQ, D, q, dt, b * qsb + h * qsh, qst, i0, br, T, D);
  att_rows_to_shared(sG, D, dout, dt, b * gsb + h * gsh, gst, i0, br, T, D);
  float acc[ATT_MAX_RPW][ATT_DCHUNKS], L[ATT_MAX_RPW], Di[ATT_MAX_RPW];
#pragma unroll
  for (int r = 0; r < ATT_MAX_RPW; ++r) {
    const int i = i0 + warp * rpw + r;
    const bool live = r < rpw && i < T;
    L[r] = live ? lse[rowBase + i] : -F32_INF;
    Di[r] = live ? dvec[rowBase + i] : 0.0f;
#pragma unroll
    for (int c = 0; c < ATT_DCHUNKS; ++c) acc[r][c] = 0.0f;
  }
  const int kEnd = causal ? min(S, off + min(T, i0 + br)) : S;
  for (int j0 = att_first_key(off + i0, window); j0 < kEnd; j0 += bc) {
    __syncthreads();
    att_rows_to_shared(sK, ld, k, dt, kb, kst, j0, bc, S, D);
    att_rows_to_shared(sV, ld, v, dt, vb, vst, j0, bc, S, D);
    __syncthreads();
    const int j = j0 + lane;
#pragma unroll
    for (int r = 0; r < ATT_MAX_RPW; ++r) {
      const int lr = warp * rpw + r, i = i0 + lr;
      if (r >= rpw || i >= T || L[r] == -F32_INF) continue;
      float ds = 0.0f;
      if (lane < bc && j < S && att_visible(j, off + i, causal, window)) {
        float t;
        const float s = att_cap(att_dot(sQ + lr * D, sK + lane * ld, D) * scale, softcap, t) + (maskRow ? maskRow[j] : 0.0f);
        const float p = expf(s - L[r]);
        ds = p * (att_dot(sG + lr * D, sV + lane * ld, D) - Di[r]);
        if (softcap > 0.0f) ds *= 1.0f - t * t;
      }
      for (int jj = 0; jj < bc; ++jj) {
        const float dsj = __shfl_sync(ATT_FULL, ds, jj);
        if (dsj == 0.0f) continue;
        const float *kr = sK + jj * ld;
#pragma unroll
        for (int c = 0; c < ATT_DCHUNKS; ++c) {
          const int d = lane + 32 * c;
          if (d < D) acc[r][c] = __fmaf_rn(dsj, kr[d], acc[r][c]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < ATT_MAX_RPW; ++r) {
    const int i = i0 + warp * rpw + r;
    if (r >= rpw || i >= T) continue;
#pragma unroll
    for (int c = 0; c < ATT_DCHUNKS; ++c) {
      const int d = lane + 32 * c;
      if (d < D) store_f(dq, dt, b * dqsb + h * dqsh + (i64)i * dqst + d, acc[r][c] * scale);
    }
  }
}

// dk and dv, key side. Shared (floats): sK, sV [4*rpw][D] (this CTA's key rows), then sQ, sG [bc][D + 1]
// (a tile of q and dO rows), then sL, sD [bc] (their lse and D_i). Grid: (ceil(S / (4*rpw)), Hkv, B).
extern "C" __global__ void attention_backward_dkdv_simt(ATT_BWD_PARAMS, int rpw, int bc) {
  extern __shared__ float att_smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, br = ATT_WARPS * rpw, ld = D + 1;
  float *sK = att_smem, *sV = sK + br * D, *sQ = sV + br * D, *sG = sQ + bc * ld, *sL = sG + bc * ld, *sD = sL + bc;
  const int b = blockIdx.z, hk = blockIdx.y, j0 = blockIdx.x * br, off = S - T, G = H / Hkv;
  att_rows_to_shared(sK, D, k, dt, b * ksb + hk * ksh, kst, j0, br, S, D);
  att_rows_to_shared(sV, D, v, dt, b * vsb + hk * vsh, vst, j0, br, S, D);
  float dkAcc[ATT_MAX_RPW][ATT_DCHUNKS], dvAcc[ATT_MAX_RPW][ATT_DCHUNKS], mk[ATT_MAX_RPW];
#pragma unroll
  for (int r = 0; r < ATT_MAX_RPW; ++r) {
    const int j = j0 + warp * rpw + r;
    mk[r] = r < rpw && j < S ? (mask ? mask[(i64)b * S + j] : 0.0f) : -F32_INF;
#pragma unroll
    for (int c = 0; c < ATT_DCHUNKS; ++c) dkAcc[r][c] = dvAcc[r][c] = 0.0f;
  }
  // Queries that can see one of this CTA's keys: from the first at or after them (causal) to the last whose window
  // reaches them.
  const int iStart = causal ? max(0, j0 - off) : 0;
  const int iEnd = window > 0 ? min(T, j0 + br - 1 - off + window) : T;
  for (int g = 0; g < G; ++g) {
    const int h = hk * G + g;
    const i64 rowBase = ((i64)b * H + h) * T;
    for (int i0 = iStart; i0 < iEnd; i0 += bc) {
      __syncthreads();
      att_rows_to_shared(sQ, ld, q, dt, b * qsb + h * qsh, qst, i0, bc, T, D);
      att_rows_to_shared(sG, ld, dout, dt, b * gsb + h * gsh, gst, i0, bc, T, D);
      for (int t = threadIdx.x; t < bc; t += blockDim.x) {
        const bool live = i0 + t < T;
        sL[t] = live ? lse[rowBase + i0 + t] : -F32_INF;
        sD[t] = live ? dvec[rowBase + i0 + t] : 0.0f;
      }
      __syncthreads();
      const int i = i0 + lane;
#pragma unroll
      for (int r = 0; r < ATT_MAX_RPW; ++r) {
        const int lr = warp * rpw + r, j = j0 + lr;
        if (r >= rpw || j >= S) continue;
        float p = 0.0f, ds = 0.0f;
        if (lane < bc && i < T && sL[lane] != -F32_INF && att_visible(j, off + i, causal, window)) {
          float t;
          const float s = att_cap(att_dot(sK + lr * D, sQ + lane * ld, D) * scale, softcap, t) + mk[r];
          p = expf(s - sL[lane]);
          ds = p * (att_dot(sV + lr * D, sG + lane * ld, D) - sD[lane]);
          if (softcap > 0.0f) ds *= 1.0f - t * t;
        }
        for (int ii = 0; ii < bc; ++ii) {
          const float pi = __shfl_sync(ATT_FULL, p, ii), dsi = __shfl_sync(ATT_FULL, ds, ii);
          if (pi == 0.0f && dsi == 0.0f) continue;
          const float *qr = sQ + ii * ld, *gr = sG + ii * ld;
#pragma unroll
          for (int c = 0; c < ATT_DCHUNKS; ++c) {
            const int d = lane + 32 * c;
            if (d < D) {
              dvAcc[r][c] = __fmaf_rn(pi, gr[d], dvAcc[r][c]);
              dkAcc[r][c] = __fmaf_rn(dsi, qr[d], dkAcc[r][c]);
            }
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < ATT_MAX_RPW; ++r) {
    const int j = j0 + warp * rpw + r;
    if (r >= rpw || j >= S) continue;
#pragma unroll
    for (int c = 0; c < ATT_DCHUNKS; ++c) {
      const int d = lane + 32 * c;
      if (d < D) {
        store_f(dk, dt, b * dksb + hk * dksh + (i64)j * dkst + d, dkAcc[r][c] * scale);
        store_f(dv, dt, b * dvsb + hk * dvsh + (i64)j * dvst + d, dvAcc[r][c]);
      }
    }
  }
}

// dq = scale * scratch, rounded into dq's dtype and layout. scratch is float32 [B, H, T, D], contiguous. A warp
// takes one (b, h, i) row at a time (blockDim = (32, warps)).
extern "C" __global__ void attention_dq_convert(const float *scratch, void *dq, int dt, i64 sb, i64 sh, i64 st, int B, int H, int T, int D,
                                                float scale) {
  const i64 rows = (i64)B * H * T;
  for (i64 r = (i64)blockIdx.x * blockDim.y + threadIdx.y; r < rows; r += (i64)gridDim.x * blockDim.y) {
    const i64 i = r % T, h = (r / T) % H, b = r / ((i64)T * H);
    const i64 o = b * sb + h * sh + i * st;
    for (int d = threadIdx.x; d < D; d += 32) store_f(dq, dt, o + d, scratch[r * D + d] * scale);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Tensor cores: mma.sync.m16n8k16 with float32 accumulators. Fragment layouts (PTX ISA), with
// g = lane / 4 and t = lane % 4: A (16x16, row-major) a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..),
// a3 = (g+8, 2t+8..); B (16x8, k-major) b0 = (k 2t..2t+1, n g), b1 = (k 2t+8.., n g); C (16x8)
// c0,c1 = (g, 2t..2t+1), c2,c3 = (g+8, 2t..2t+1). Shared tiles are row-major with rows padded by 8 elements
// (16 bytes), so the 8 row addresses of each ldmatrix fall in distinct bank groups.
// ---------------------------------------------------------------------------------------------------------

__device__ __forceinline__ u32 att_smem_addr(const void *p) {
  u32 a;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
  return a;
}

// 16 bytes global -> shared without a register round trip; an invalid row is zero-filled (nothing is read).
__device__ __forceinline__ void att_cp16(u32 dst, const void *src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void att_cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void att_cp_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

__device__ __forceinline__ void att_ldsm4(u32 (&r)[4], u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void att_ldsm4t(u32 (&r)[4], u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void att_ldsm2t(u32 (&r)[2], u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(addr));
}

template <bool BF16>
__device__ __forceinline__ void att_mma(float (&c)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  if (BF16) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Two floats rounded to nearest even into one 32-bit register: `lo` in the low half (the lower column).
template <bool BF16>
__device__ __forceinline__ u32 att_pack(float lo, float hi) {
  u32 r;
  if (BF16) asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  else asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

// The A operand of k-block kk from score accumulators laid out as C fragments over n-tiles 2kk and 2kk+1.
template <bool BF16>
__device__ __forceinline__ void att_c_to_a(u32 (&a)[4], const float (&c0)[4], const float (&c1)[4]) {
  a[0] = att_pack<BF16>(c0[0], c0[1]);
  a[1] = att_pack<BF16>(c0[2], c0[3]);
  a[2] = att_pack<BF16>(c1[0], c1[1]);
  a[3] = att_pack<BF16>(c1[2], c1[3]);
}

// Rows row0 .. row0+ROWS-1 (row stride st elements) into a shared tile with rows LDS elements apart; rows at or
// past `limit` are zero-filled. NT: the CTA's threads, which share the 16-byte chunks.
template <int D, int ROWS, int NT = ATT_THREADS>
__device__ __forceinline__ void att_tile_load(u32 dst, const u16 *src, i64 st, int row0, int limit) {
  constexpr int CH = D / 8, LDS = D + 8;
  for (int c = threadIdx.x; c < ROWS * CH; c += NT) {
    const int r = c / CH, ch = c - r * CH;
    const bool valid = row0 + r < limit;
    att_cp16(dst + (u32)((r * LDS + ch * 8) * 2), valid ? (const void *)(src + (i64)(row0 + r) * st + ch * 8) : (const void *)src, valid);
  }
}

template <int D, int ROWS, int NT = ATT_THREADS>
__device__ __forceinline__ void att_tile_store(u16 *dst, i64 st, const u16 *tile, int row0, int limit) {
  constexpr int CH = D / 8, LDS = D + 8;
  for (int c = threadIdx.x; c < ROWS * CH; c += NT) {
    const int r = c / CH, ch = c - r * CH;
    if (row0 + r < limit) *(uint4 *)(dst + (i64)(row0 + r) * st + ch * 8) = *(const uint4 *)(tile + r * LDS + ch * 8);
  }
}

// The score of the mma kernels in log2 units from a raw product s = q . k: s * scale * log2(e) (sl2), or with a
// soft-cap (CAP, C > 0), C log2(e) tanh(s * scale / C) (capL2 = C log2(e), rawToCap = scale / C); t receives the
// tanh (0 without a cap), so that dc/dr = 1 - t^2. CAP is a template parameter: a kernel without the cap keeps the
// element loops it had before, with no per-element branch (a run-time test there slowed the forward by a third).
template <bool CAP>
__device__ __forceinline__ float att_score_l2(float s, float sl2, float capL2, float rawToCap, float &t) {
  if (CAP) {
    t = tanhf(s * rawToCap);
    return capL2 * t;
  }
  t = 0.0f;
  return s * sl2;
}

// The forward's scores of one K tile in place, in log2 units with the key mask added: s[n][e] is the raw product
// of key col = c0 + n*8 + (e & 1) (c0 = k0 + 2 * (lane % 4)) with row A (e < 2) or row B. EDGE: the tile holds
// keys that a row does not see (outside lo .. hi), which become -inf; the kernel picks the instance per tile, so
// that tiles without such keys run no masking at all.
template <bool EDGE, bool CAP, int NS>
__device__ __forceinline__ void att_forward_scores(float (&s)[NS][4], int c0, const float *maskRow, int S, float sl2, float capL2,
                                                   float rawToCap, int loA, int hiA, int loB, int hiB) {
#pragma unroll
  for (int n = 0; n < NS; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int col = c0 + n * 8 + (e & 1);
      float tc;
      float x = att_score_l2<CAP>(s[n][e], sl2, capL2, rawToCap, tc);
      if (maskRow && (!EDGE || col < S)) x += maskRow[col] * ATT_LOG2E;
      if (EDGE && ((col < (e < 2 ? loA : loB)) | (col > (e < 2 ? hiA : hiB)))) x = -F32_INF;
      s[n][e] = x;
    }
  }
}

// The backward's P^T and dS^T (dR^T under a cap) of one query tile in place: st[n][e] holds the raw product of key
// A (e < 2) or B = A + 8 with query qi = q0 + n*8 + (e & 1) of the tile (q0 = 2 * (lane % 4)), dpt[n][e] their
// dO . v; rowL[n][j] and rowD[n][j] are p's exponent offset (lse in log2 units) and D of query q0 + n*8 + j. Where `edge` (the tile holds pairs that causality or the window hide), key A sits rel positions after the
// tile's first query (rel = A - off - i0), so queries rel .. (causal) and .. rel + window - 1 (window) see it and the
// others get p = 0. MASK: the instance carries that test at all; the caller runs one without it on tiles that need
// none where there are many elements per thread.
template <bool MASK, bool CAP, int NQ, int BR>
__device__ __forceinline__ void att_backward_probs(float (&st)[NQ][4], float (&dpt)[NQ][4], const float (&rowL)[NQ][2], const float (&rowD)[NQ][2], int q0,
                                                   float mkA, float mkB, float sl2, float capL2, float rawToCap, int rel, int causal,
                                                   int window, bool edge) {
  // loA <= qi <= hiA is tested as (unsigned)(qi - loA) <= hiA - loA: one subtraction and one comparison, what
  // causality alone took. A key that no query of the tile sees gets bounds past every qi.
  int loA = MASK && causal ? rel : 0, hiA = MASK && window > 0 ? rel + window - 1 : BR;
  int loB = MASK && causal ? rel + 8 : 0, hiB = MASK && window > 0 ? rel + 8 + window - 1 : BR;
  if (hiA < loA) loA = hiA = 2 * BR;
  if (hiB < loB) loB = hiB = 2 * BR;
  const unsigned spanA = (unsigned)(hiA - loA), spanB = (unsigned)(hiB - loB);
#pragma unroll
  for (int n = 0; n < NQ; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int qi = q0 + n * 8 + (e & 1);
      float tc;
      float x = att_score_l2<CAP>(st[n][e], sl2, capL2, rawToCap, tc) + (e < 2 ? mkA : mkB) - rowL[n][e & 1];
      if (MASK && edge && (unsigned)(qi - (e < 2 ? loA : loB)) > (e < 2 ? spanA : spanB)) x = -F32_INF;
      st[n][e] = exp2f(x);
      dpt[n][e] = st[n][e] * (dpt[n][e] - rowD[n][e & 1]);
      if (CAP) dpt[n][e] *= 1.0f - tc * tc;
    }
  }
}

// Shared address of the row this lane gives ldmatrix.x4 for the 16x16 block at (row0, col0) of a tile whose rows
// are LDS elements apart. att_a_addr: the block is an A operand (rows = m), giving a0..a3. att_bn_addr: rows
// are n and columns k (no transpose), giving {b0, b1} of n-tile row0/8 then of n-tile row0/8 + 1. att_bk_addr:
// rows are k and columns n (used with .trans), giving {b0, b1} of n-tile col0/8 then of col0/8 + 1.
template <int LDS>
__device__ __forceinline__ u32 att_a_addr(u32 tile, int row0, int col0, int lane) {
  return tile + (u32)(((row0 + (lane & 15)) * LDS + col0 + (lane >> 4) * 8) * 2);
}
template <int LDS>
__device__ __forceinline__ u32 att_bn_addr(u32 tile, int row0, int col0, int lane) {
  return tile + (u32)(((row0 + (lane & 7) + (lane >> 4) * 8) * LDS + col0 + ((lane >> 3) & 1) * 8) * 2);
}
template <int LDS>
__device__ __forceinline__ u32 att_bk_addr(u32 tile, int row0, int col0, int lane) {
  return tile + (u32)(((row0 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDS + col0 + (lane >> 4) * 8) * 2);
}

// Forward: 4 warps x MT m-tiles of 16 query rows (a warp owns 16 * MT consecutive rows); K and V tiles of 64 keys.
// MT = 1 at headDim <= 128: Q is staged through sV into registers once. MT = 2 (128-query tiles): Q stays in
// dynamic shared memory ([128][D + 8] after sK and sV) and each k-block's A fragments are read as S = Q K^T
// reaches them, so that every K and V fragment read from shared memory feeds two m-tiles' products (shared-memory
// reads per mma go from 1/2 to 5/16 at headDim 128, the FlashAttention-2 tiling). The
// V tile of step t loads while S = Q K^T runs, the K tile of step t+1 while O += P V runs. With a window the walk
// starts at the tile holding the first key the CTA's first query sees; tiles wholly before it are never loaded.
// Grid: (ceil(T / (64 * MT)), H, B).
//
// headDim 256 (QREG false): a thread's output is 16 x 256 / 32 = 128 float registers (acc[32][4]: n-tile n holds
// columns n*8 + 2t, +1 of rows A and B) and its scores 32 more (s[8][4]), so Q's fragments (KD x 4 = 64 registers)
// cannot stay beside them. Q keeps a shared tile of its own, sQ [64][264] after sK and sV [64][264] (dynamic shared
// memory, 3 x 64 x 264 x 2 = 101376 bytes, ATT_FWD_SMEM_256), and each k-block's A fragment (rows 16*warp ..
// +15, columns 16kk .. +15) is read with ldmatrix as the S = Q K^T loop reaches it, once per key tile.
template <bool BF16, int DH, bool CAP, int MT>
__device__ __forceinline__ void att_forward_mma(ATT_FWD_PARAMS) {
  constexpr int BR = 64 * MT, BC = 64, LDS = DH + 8, KD = DH / 16, NS = BC / 8, NO = DH / 8, WR = 16 * MT;
  constexpr bool QREG = MT == 1 && DH <= 128;
  u16 *sK, *sV, *sQ;
  if constexpr (QREG) {
    __shared__ __align__(16) u16 sKs[BC * LDS];
    __shared__ __align__(16) u16 sVs[BC * LDS];
    sK = sKs;
    sV = sVs;
    sQ = sVs;
  } else {
    static_assert(DH != 256 || MT != 1 || (2 * BC + BR) * LDS * 2 == ATT_FWD_SMEM_256, "the launcher's dynamic shared memory");
    extern __shared__ __align__(16) u16 att_smem16[];
    sK = att_smem16;
    sV = sK + BC * LDS;
    sQ = sV + BC * LDS;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, tg = lane & 3;
  const int b = blockIdx.z, h = blockIdx.y, hk = h / (H / Hkv), off = S - T;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * BR;  // the longest causal tiles start first
  const int w0 = q0 + warp * WR;                     // this warp's first query row
  const u16 *Qp = (const u16 *)q + b * qsb + h * qsh;
  const u16 *Kp = (const u16 *)k + b * ksb + hk * ksh;
  const u16 *Vp = (const u16 *)v + b * vsb + hk * vsh;
  const float *maskRow = mask ? mask + (i64)b * S : nullptr;
  const u32 sKa = att_smem_addr(sK), sVa = att_smem_addr(sV), sQa = QREG ? sVa : att_smem_addr(sQ);
  const int kEnd = causal ? min(S, off + min(T, q0 + BR)) : S;
  const int tiles = (kEnd + BC - 1) / BC, tile0 = att_first_key(off + q0, window) / BC;

  att_tile_load<DH, BR>(sQa, Qp, qst, q0, T);
  if (tiles > tile0) att_tile_load<DH, BC>(sKa, Kp, kst, tile0 * BC, S);
  att_cp_commit();
  att_cp_wait_all();
  __syncthreads();
  u32 qf[QREG ? KD : 1][4];
  if constexpr (QREG) {
#pragma unroll
    for (int kk = 0; kk < KD; ++kk) att_ldsm4(qf[kk], att_a_addr<LDS>(sQa, warp * 16, kk * 16, lane));
    __syncthreads();  // sQ is sV, which the first V tile overwrites
  }

  float acc[MT][NO][4];
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int n = 0; n < NO; ++n) acc[m][n][0] = acc[m][n][1] = acc[m][n][2] = acc[m][n][3] = 0.0f;
  // Row state in log2 units for rows A = w0 + 16*m + g and B = A + 8 of each m-tile m; l is this thread's partial sum.
  float mA[MT], mB[MT], lA[MT], lB[MT];
#pragma unroll
  // An attention sink (one logit of head h, no value row) starts every row's max and sum, the sum in one thread of
  // the quad (the partial sums add up at the end): exp2(sink - sink) = 1.
  const float sinkL2 = sinks ? sinks[h] * ATT_LOG2E : -F32_INF, sinkL = sinks && tg == 0 ? 1.0f : 0.0f;
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    mA[m] = mB[m] = sinkL2;
    lA[m] = lB[m] = sinkL;
  }
  const float sl2 = scale * ATT_LOG2E, capL2 = softcap * ATT_LOG2E, rawToCap = softcap > 0.0f ? scale / softcap : 0.0f;
  for (int t = tile0; t < tiles; ++t) {
    const int k0 = t * BC;
    att_tile_load<DH, BC>(sVa, Vp, vst, k0, S);
    att_cp_commit();
    float s[MT][NS][4];
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
      for (int n = 0; n < NS; ++n) s[m][n][0] = s[m][n][1] = s[m][n][2] = s[m][n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < KD; ++kk) {
      u32 qs[QREG ? 1 : MT][4];
      if constexpr (!QREG) {
#pragma unroll
        for (int m = 0; m < MT; ++m) att_ldsm4(qs[m], att_a_addr<LDS>(sQa, warp * WR + m * 16, kk * 16, lane));
      }
#pragma unroll
      for (int np = 0; np < BC / 16; ++np) {
        u32 bk[4];
        att_ldsm4(bk, att_bn_addr<LDS>(sKa, np * 16, kk * 16, lane));
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          const u32(&qa)[4] = QREG ? qf[kk] : qs[QREG ? 0 : m];
          att_mma<BF16>(s[m][2 * np], qa, bk[0], bk[1]);
          att_mma<BF16>(s[m][2 * np + 1], qa, bk[2], bk[3]);
        }
      }
    }
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      // Whether some key of the tile is hidden from some row of this m-tile: past S, after the row (causal), or at
      // or beyond the window behind it.
      const int r0 = w0 + m * 16;
      const bool edge = k0 + BC > S || (causal && k0 + BC - 1 > off + r0) || (window > 0 && off + r0 + 15 - k0 >= window);
      if (edge) {
        // The keys rows A and B see, lo .. hi: S and causality bound them above, the window below. Masking compares
        // a key with these bounds alone (recomputed here, on edge tiles only, rather than held in registers).
        const int rowA = r0 + g, rowB = rowA + 8;
        const int hiA = causal ? min(S - 1, off + rowA) : S - 1, hiB = causal ? min(S - 1, off + rowB) : S - 1;
        att_forward_scores<true, CAP>(s[m], k0 + tg * 2, maskRow, S, sl2, capL2, rawToCap, att_first_key(off + rowA, window), hiA,
                                      att_first_key(off + rowB, window), hiB);
      } else {
        att_forward_scores<false, CAP>(s[m], k0 + tg * 2, maskRow, S, sl2, capL2, rawToCap, 0, S - 1, 0, S - 1);
      }
      float nA = mA[m], nB = mB[m];
#pragma unroll
      for (int n = 0; n < NS; ++n) {
        nA = fmaxf(nA, fmaxf(s[m][n][0], s[m][n][1]));
        nB = fmaxf(nB, fmaxf(s[m][n][2], s[m][n][3]));
      }
      nA = fmaxf(nA, __shfl_xor_sync(ATT_FULL, nA, 1));
      nA = fmaxf(nA, __shfl_xor_sync(ATT_FULL, nA, 2));
      nB = fmaxf(nB, __shfl_xor_sync(ATT_FULL, nB, 1));
      nB = fmaxf(nB, __shfl_xor_sync(ATT_FULL, nB, 2));
      // A row that has seen no key yet keeps max -inf; exponents then use 0 so that exp2(-inf - 0) = 0.
      const float uA = nA == -F32_INF ? 0.0f : nA, uB = nB == -F32_INF ? 0.0f : nB;
      const float cA = exp2f(mA[m] - uA), cB = exp2f(mB[m] - uB);
      mA[m] = nA;
      mB[m] = nB;
      float sumA = 0.0f, sumB = 0.0f;
#pragma unroll
      for (int n = 0; n < NS; ++n) {
        s[m][n][0] = exp2f(s[m][n][0] - uA);
        s[m][n][1] = exp2f(s[m][n][1] - uA);
        s[m][n][2] = exp2f(s[m][n][2] - uB);
        s[m][n][3] = exp2f(s[m][n][3] - uB);
        sumA += s[m][n][0] + s[m][n][1];
        sumB += s[m][n][2] + s[m][n][3];
      }
      lA[m] = lA[m] * cA + sumA;
      lB[m] = lB[m] * cB + sumB;
#pragma unroll
      for (int n = 0; n < NO; ++n) {
        acc[m][n][0] *= cA;
        acc[m][n][1] *= cA;
        acc[m][n][2] *= cB;
        acc[m][n][3] *= cB;
      }
    }
    att_cp_wait_all();
    __syncthreads();  // V has landed, and every warp is done with this K tile
    if (t + 1 < tiles) att_tile_load<DH, BC>(sKa, Kp, kst, k0 + BC, S);
    att_cp_commit();
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk) {
      u32 pa[MT][4];
#pragma unroll
      for (int m = 0; m < MT; ++m) att_c_to_a<BF16>(pa[m], s[m][2 * kk], s[m][2 * kk + 1]);
#pragma unroll
      for (int dp = 0; dp < DH / 16; ++dp) {
        u32 bv[4];
        att_ldsm4t(bv, att_bk_addr<LDS>(sVa, kk * 16, dp * 16, lane));
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          att_mma<BF16>(acc[m][2 * dp], pa[m], bv[0], bv[1]);
          att_mma<BF16>(acc[m][2 * dp + 1], pa[m], bv[2], bv[3]);
        }
      }
    }
    att_cp_wait_all();
    __syncthreads();  // the next K tile has landed, and every warp is done with this V tile
  }

  // The output tile goes through shared memory no longer read after the last barrier (sK holds BC = 64 rows, enough
  // for one m-tile per warp; sQ holds BR) for 16-byte stores.
  u16 *const sO = QREG ? sK : sQ;
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    float la = lA[m], lb = lB[m];
    la += __shfl_xor_sync(ATT_FULL, la, 1);
    la += __shfl_xor_sync(ATT_FULL, la, 2);
    lb += __shfl_xor_sync(ATT_FULL, lb, 1);
    lb += __shfl_xor_sync(ATT_FULL, lb, 2);
    const float iA = la > 0.0f ? 1.0f / la : 0.0f, iB = lb > 0.0f ? 1.0f / lb : 0.0f;
    const int rA = warp * WR + m * 16 + g, rowA = q0 + rA, rowB = rowA + 8;
    if (tg == 0) {
      float *L = lse + ((i64)b * H + h) * T;
      if (rowA < T) L[rowA] = la > 0.0f ? (mA[m] + log2f(la)) * ATT_LN2 : -F32_INF;
      if (rowB < T) L[rowB] = lb > 0.0f ? (mB[m] + log2f(lb)) * ATT_LN2 : -F32_INF;
    }
#pragma unroll
    for (int n = 0; n < NO; ++n) {
      *(u32 *)(sO + rA * LDS + n * 8 + tg * 2) = att_pack<BF16>(acc[m][n][0] * iA, acc[m][n][1] * iA);
      *(u32 *)(sO + (rA + 8) * LDS + n * 8 + tg * 2) = att_pack<BF16>(acc[m][n][2] * iB, acc[m][n][3] * iB);
    }
  }
  __syncthreads();
  att_tile_store<DH, BR>((u16 *)o + b * osb + h * osh, ost, sO, q0, T);
}

// Backward: one CTA per (key tile, key/value head, batch); its warps own the CTA's keys in groups of 16 (a warp's
// rows of dK and dV stay in registers). Per tile of BR queries: S^T = K Q^T and dP^T = V dO^T (keys x queries),
// P^T from lse, dV += P^T dO, dS^T = P^T (dP^T - D) (times 1 - t^2 under a soft-cap: dR^T), dK += dS^T Q; dS^T
// goes through shared memory so that dQ += dS K (queries x D) can be spread over the warps and added to the
// float32 scratch with atomics. The tiles run over every query head of the group and, per head, from the first
// query that sees the CTA's keys (causal) to the last whose window reaches them, as one sequence of steps.
// Grid: (ceil(S / BC), Hkv, B).
//
// Variants (template parameters): BR query rows per tile, NW warps, NB query-tile buffers. With NB = 2 the next
// step's Q, dO, lse and D load (cp.async) while this step computes; with NB = 1 they load during this step's dQ,
// after the last read of the buffer. DS = 2 at headDim 256: 16 keys x 256 dims of dK and of dV would be 256 float
// registers per thread, so two warps share a key group: warp w owns keys kw*16 .. +15 (kw = w % KG) and
// dimensions dh*128 .. +127 (dh = w / KG) of dK and dV, computes S^T and dP^T of its 16 keys over its half of the
// dimensions only (k-blocks dh*8 .. dh*8+7), and the two partial sums meet in shared memory (sX: per warp
// 2*NQ*4 floats per lane, lane-contiguous), each warp adding its partner's to its own, so that both hold the whole
// S^T and dP^T (a + b = b + a: the same bits) and derive the same P^T and dS^T; the dh = 0 warp writes dS^T to sS.
// A CTA holds BC = 16 * NW / DS keys. dQ (BR x DH): WPM = NW / (BR/16) warps per m-tile of 16 queries, NPW n-tiles
// (8 columns) each, the m-tile's dS A fragments loaded once for all of them.
//
// Dynamic shared memory (att_bwd_smem; attentionBackwardVariants in cuda-backend.ts mirrors it): sK, sV
// [BC][DH + 8], NB x (sQ, sG [BR][DH + 8]), sS [BC][BR + 8] (16-bit), then NB x (sL, sD [BR]) and, when DS = 2,
// sX [NW][2 * BR / 8 * 4][32] (float). sL and sD hold lse and D as stored (rows past T zero); p's exponent uses
// +inf for rows past T and for queries that see no key (lse -inf), so that their p is exp2(-inf) = 0.
__host__ __device__ constexpr int att_bwd_smem(int DH, int BR, int NW, int NB) {
  return (2 * (16 * NW / (DH > 128 ? 2 : 1)) * (DH + 8) + NB * 2 * BR * (DH + 8) + (16 * NW / (DH > 128 ? 2 : 1)) * (BR + 8)) * 2 +
         (NB * 2 * BR + (DH > 128 ? NW * 2 * (BR / 8) * 4 * 32 : 0)) * 4;
}

// 4 bytes global -> shared; an invalid element is zero-filled (nothing is read).
__device__ __forceinline__ void att_cp4(u32 dst, const void *src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 4 : 0));
}

// dst[0..1] += (a, b) in global memory: one vector reduction on sm_90, two scalar ones before it.
__device__ __forceinline__ void att_red2(float *dst, float a, float b) {
#if __CUDA_ARCH__ >= 900
  atomicAdd((float2 *)dst, make_float2(a, b));
#else
  atomicAdd(dst, a);
  atomicAdd(dst + 1, b);
#endif
}

template <bool BF16, int DH, int BR, int NW, int NB, bool CAP>
__device__ __forceinline__ void att_backward_mma(ATT_BWD_PARAMS) {
  constexpr int DS = DH > 128 ? 2 : 1, KG = NW / DS, BC = 16 * KG, NT = NW * 32;
  constexpr int LDS = DH + 8, LDT = BR + 8, KD = DH / 16, NQ = BR / 8, NO = DH / 8, HKD = KD / DS, NOH = NO / DS;
  constexpr int XW = 2 * NQ * 4 * 32, QBUF = 2 * BR * LDS;
  static_assert(NW % DS == 0 && (NB == 1 || NB == 2), "backward variant");
  extern __shared__ __align__(16) u16 att_smem16[];
  u16 *const sK = att_smem16, *const sV = sK + BC * LDS, *const sQ0 = sV + BC * LDS, *const sS = sQ0 + NB * QBUF;
  float *const sL0 = (float *)(sS + BC * LDT), *const sX = sL0 + NB * 2 * BR;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, tg = lane & 3;
  const int kw = warp % KG, dh = warp / KG;  // the warp's key group and dimension half
  const int b = blockIdx.z, hk = blockIdx.y, k0 = blockIdx.x * BC, off = S - T, G = H / Hkv;
  const u32 sKa = att_smem_addr(sK), sVa = att_smem_addr(sV), sSa = att_smem_addr(sS);
  att_tile_load<DH, BC, NT>(sKa, (const u16 *)k + b * ksb + hk * ksh, kst, k0, S);
  att_tile_load<DH, BC, NT>(sVa, (const u16 *)v + b * vsb + hk * vsh, vst, k0, S);

  const int iStart = causal ? max(0, k0 - off) : 0;
  const int iEnd = window > 0 ? min(T, k0 + BC - 1 - off + window) : T;
  const int first = iStart / BR * BR, perHead = iEnd > first ? (iEnd - first + BR - 1) / BR : 0, steps = G * perHead;
  // Q, dO, lse and D of step `step` into buffer `buf`, as one cp.async group.
  auto loadStep = [&](int step, int buf) {
    const int gi = step / perHead, i0 = first + (step - gi * perHead) * BR, h = hk * G + gi;
    const u32 qa = att_smem_addr(sQ0 + buf * QBUF);
    att_tile_load<DH, BR, NT>(qa, (const u16 *)q + b * qsb + h * qsh, qst, i0, T);
    att_tile_load<DH, BR, NT>(qa + BR * LDS * 2, (const u16 *)dout + b * gsb + h * gsh, gst, i0, T);
    const i64 rowBase = ((i64)b * H + h) * T;
    for (int r = threadIdx.x; r < 2 * BR; r += NT) {
      const int row = i0 + r % BR;
      const bool valid = row < T;
      att_cp4(att_smem_addr(sL0 + buf * 2 * BR + r), (r < BR ? lse : (const float *)dvec) + rowBase + (valid ? row : 0), valid);
    }
    att_cp_commit();
  };
  if (steps > 0) loadStep(0, 0);  // K and V complete with the first step's group
  else att_cp_commit();

  const int keyA = k0 + kw * 16 + g, keyB = keyA + 8;
  const float mkA = keyA < S ? (mask ? mask[(i64)b * S + keyA] * ATT_LOG2E : 0.0f) : -F32_INF;
  const float mkB = keyB < S ? (mask ? mask[(i64)b * S + keyB] * ATT_LOG2E : 0.0f) : -F32_INF;
  float dkAcc[NOH][4], dvAcc[NOH][4];
#pragma unroll
  for (int n = 0; n < NOH; ++n) {
    dkAcc[n][0] = dkAcc[n][1] = dkAcc[n][2] = dkAcc[n][3] = 0.0f;
    dvAcc[n][0] = dvAcc[n][1] = dvAcc[n][2] = dvAcc[n][3] = 0.0f;
  }
  const float sl2 = scale * ATT_LOG2E, capL2 = softcap * ATT_LOG2E, rawToCap = softcap > 0.0f ? scale / softcap : 0.0f;
  for (int step = 0; step < steps; ++step) {
    const int buf = NB == 2 ? step & 1 : 0;
    const int gi = step / perHead, i0 = first + (step - gi * perHead) * BR, h = hk * G + gi;
    att_cp_wait_all();
    __syncthreads();  // this step's tiles have landed, and every warp is done with the previous step
    if (NB == 2 && step + 1 < steps) loadStep(step + 1, buf ^ 1);
    const u32 sQa = att_smem_addr(sQ0 + buf * QBUF), sGa = sQa + BR * LDS * 2;
    const float *const sL = sL0 + buf * 2 * BR, *const sD = sL + BR;

    float st[NQ][4], dpt[NQ][4];
#pragma unroll
    for (int n = 0; n < NQ; ++n) st[n][0] = st[n][1] = st[n][2] = st[n][3] = dpt[n][0] = dpt[n][1] = dpt[n][2] = dpt[n][3] = 0.0f;
#pragma unroll
    for (int kx = 0; kx < HKD; ++kx) {
      const int kk = dh * HKD + kx;  // this warp's half of the dimensions (all of them when DS = 1)
      u32 ka[4], va[4];
      att_ldsm4(ka, att_a_addr<LDS>(sKa, kw * 16, kk * 16, lane));
      att_ldsm4(va, att_a_addr<LDS>(sVa, kw * 16, kk * 16, lane));
#pragma unroll
      for (int np = 0; np < BR / 16; ++np) {
        u32 bq[4], bg[4];
        att_ldsm4(bq, att_bn_addr<LDS>(sQa, np * 16, kk * 16, lane));
        att_ldsm4(bg, att_bn_addr<LDS>(sGa, np * 16, kk * 16, lane));
        att_mma<BF16>(st[2 * np], ka, bq[0], bq[1]);
        att_mma<BF16>(st[2 * np + 1], ka, bq[2], bq[3]);
        att_mma<BF16>(dpt[2 * np], va, bg[0], bg[1]);
        att_mma<BF16>(dpt[2 * np + 1], va, bg[2], bg[3]);
      }
    }
    if constexpr (DS > 1) {
      // Element (n, e) of st at sX[warp][n*4 + e][lane], of dpt at sX[warp][(NQ + n)*4 + e][lane].
      float *mine = sX + warp * XW + lane;
      const float *theirs = sX + (warp < KG ? warp + KG : warp - KG) * XW + lane;
#pragma unroll
      for (int n = 0; n < NQ; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          mine[(n * 4 + e) * 32] = st[n][e];
          mine[((NQ + n) * 4 + e) * 32] = dpt[n][e];
        }
      }
      __syncthreads();
#pragma unroll
      for (int n = 0; n < NQ; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          st[n][e] += theirs[(n * 4 + e) * 32];
          dpt[n][e] += theirs[((NQ + n) * 4 + e) * 32];
        }
      }
    }
    // p's exponent offset (lse in log2 units) and D of this thread's queries q0 + n*8 + j.
    float rowL[NQ][2], rowD[NQ][2];
#pragma unroll
    for (int n = 0; n < NQ; ++n) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int qi = tg * 2 + n * 8 + j;
        const float l = sL[qi];
        rowL[n][j] = i0 + qi < T && l != -F32_INF ? l * ATT_LOG2E : F32_INF;
        rowD[n][j] = sD[qi];
      }
    }
    // Whether some query of the tile does not see some key of this warp: one before the key (causal), or one
    // whose window ends after it.
    const bool edge = (causal && k0 + kw * 16 + 15 > off + i0) || (window > 0 && off + i0 + BR - 1 - (k0 + kw * 16) >= window);
    // At 8 elements per thread (headDim 128) one instance testing `edge` per element measured faster than two.
    const int rel = keyA - off - i0;
    if (NQ <= 2) att_backward_probs<true, CAP, NQ, BR>(st, dpt, rowL, rowD, tg * 2, mkA, mkB, sl2, capL2, rawToCap, rel, causal, window, edge);
    else if (edge) att_backward_probs<true, CAP, NQ, BR>(st, dpt, rowL, rowD, tg * 2, mkA, mkB, sl2, capL2, rawToCap, rel, causal, window, true);
    else att_backward_probs<false, CAP, NQ, BR>(st, dpt, rowL, rowD, tg * 2, mkA, mkB, sl2, capL2, rawToCap, rel, causal, window, false);
#pragma unroll
    for (int kk = 0; kk < BR / 16; ++kk) {
      u32 pa[4], da[4];
      att_c_to_a<BF16>(pa, st[2 * kk], st[2 * kk + 1]);
      att_c_to_a<BF16>(da, dpt[2 * kk], dpt[2 * kk + 1]);
#pragma unroll
      for (int dp = 0; dp < DH / 16 / DS; ++dp) {
        // Columns dh*DH/DS + 16dp .. +15 of dO and Q: n-tiles 2dp and 2dp + 1 of this warp's accumulators.
        const int col = (dh * (DH / 16 / DS) + dp) * 16;
        u32 bg[4], bq[4];
        att_ldsm4t(bg, att_bk_addr<LDS>(sGa, kk * 16, col, lane));
        att_ldsm4t(bq, att_bk_addr<LDS>(sQa, kk * 16, col, lane));
        att_mma<BF16>(dvAcc[2 * dp], pa, bg[0], bg[1]);
        att_mma<BF16>(dvAcc[2 * dp + 1], pa, bg[2], bg[3]);
        att_mma<BF16>(dkAcc[2 * dp], da, bq[0], bq[1]);
        att_mma<BF16>(dkAcc[2 * dp + 1], da, bq[2], bq[3]);
      }
    }
    if (DS == 1 || dh == 0) {
#pragma unroll
      for (int n = 0; n < NQ; ++n) {
        *(u32 *)(sS + (kw * 16 + g) * LDT + n * 8 + tg * 2) = att_pack<BF16>(dpt[n][0], dpt[n][1]);
        *(u32 *)(sS + (kw * 16 + g + 8) * LDT + n * 8 + tg * 2) = att_pack<BF16>(dpt[n][2], dpt[n][3]);
      }
    }
    __syncthreads();  // sS is whole; nothing reads this step's sQ, sG, sL or sD any more
    if (NB == 1 && step + 1 < steps) loadStep(step + 1, 0);

    // dQ: a[kk] is the dS fragment of keys 16kk .. +15 (A operand: att_bn_addr's lane order over dS^T, whose rows
    // are keys, with .trans yields a0..a3 of the transposed block); B = K read transposed, two n-tiles per load.
    constexpr int WPM = NW / (BR / 16), NPW = NO / WPM;
    static_assert(NW % (BR / 16) == 0 && NO % WPM == 0 && NPW % 2 == 0, "dQ tiles must split evenly over the warps");
    const int mt = warp / WPM, nt0 = (warp % WPM) * NPW;
    u32 a[BC / 16][4];
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk) att_ldsm4t(a[kk], att_bn_addr<LDT>(sSa, kk * 16, mt * 16, lane));
    const int rA = i0 + mt * 16 + g;
    float *dQ = (float *)dq + (((i64)b * H + h) * T) * DH;
#pragma unroll
    for (int np = 0; np < NPW / 2; ++np) {
      float c[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
      for (int kk = 0; kk < BC / 16; ++kk) {
        u32 bk[4];
        att_ldsm4t(bk, att_bk_addr<LDS>(sKa, kk * 16, (nt0 + 2 * np) * 8, lane));
        att_mma<BF16>(c[0], a[kk], bk[0], bk[1]);
        att_mma<BF16>(c[1], a[kk], bk[2], bk[3]);
      }
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int col = (nt0 + 2 * np + j) * 8 + tg * 2;
        if (rA < T) att_red2(dQ + (i64)rA * DH + col, c[j][0], c[j][1]);
        if (rA + 8 < T) att_red2(dQ + (i64)(rA + 8) * DH + col, c[j][2], c[j][3]);
      }
    }
  }
  att_cp_wait_all();  // a CTA whose keys no query sees never waited for its K and V
  __syncthreads();    // and every warp is done reading sK and sV
#pragma unroll
  for (int n = 0; n < NOH; ++n) {
    // Columns dh*DH/DS + n*8 + 2t, +1 (dh = 0 when DS = 1).
    *(u32 *)(sK + (kw * 16 + g) * LDS + dh * (DH / DS) + n * 8 + tg * 2) = att_pack<BF16>(dkAcc[n][0] * scale, dkAcc[n][1] * scale);
    *(u32 *)(sK + (kw * 16 + g + 8) * LDS + dh * (DH / DS) + n * 8 + tg * 2) = att_pack<BF16>(dkAcc[n][2] * scale, dkAcc[n][3] * scale);
    *(u32 *)(sV + (kw * 16 + g) * LDS + dh * (DH / DS) + n * 8 + tg * 2) = att_pack<BF16>(dvAcc[n][0], dvAcc[n][1]);
    *(u32 *)(sV + (kw * 16 + g + 8) * LDS + dh * (DH / DS) + n * 8 + tg * 2) = att_pack<BF16>(dvAcc[n][2], dvAcc[n][3]);
  }
  __syncthreads();
  att_tile_store<DH, BC, NT>((u16 *)dk + b * dksb + hk * dksh, dkst, sK, k0, S);
  att_tile_store<DH, BC, NT>((u16 *)dv + b * dvsb + hk * dvsh, dvst, sV, k0, S);
}

// The forward kernels; NAME gets a softcap_ prefix for the soft-capped one (CAP), which the launcher picks when
// softcap > 0.
#define ATT_MMA_FORWARD_ONE(NAME, BF16, DH, CAP, MT)                                                     \
  extern "C" __global__ void __launch_bounds__(ATT_THREADS) attention_forward_mma_##NAME(ATT_FWD_PARAMS) {   \
    att_forward_mma<BF16, DH, CAP, MT>(ATT_FWD_ARGS);                                                        \
  }
// Per dtype: one m-tile per warp (64-query tiles) at every head dimension, with and without the cap; two
// (128-query tiles, Q in dynamic shared memory) at 64 and 128 without it, which the launcher takes where the
// block may opt in to their shared memory (ATTENTION_MMA_M2_FORWARD_BYTES in cuda-backend.ts).
#define ATT_MMA_FORWARD(TYPE, BF16)                                 \
  ATT_MMA_FORWARD_ONE(TYPE##_d64, BF16, 64, false, 1)               \
  ATT_MMA_FORWARD_ONE(softcap_##TYPE##_d64, BF16, 64, true, 1)      \
  ATT_MMA_FORWARD_ONE(TYPE##_d128, BF16, 128, false, 1)             \
  ATT_MMA_FORWARD_ONE(softcap_##TYPE##_d128, BF16, 128, true, 1)    \
  ATT_MMA_FORWARD_ONE(TYPE##_d256, BF16, 256, false, 1)             \
  ATT_MMA_FORWARD_ONE(softcap_##TYPE##_d256, BF16, 256, true, 1)    \
  ATT_MMA_FORWARD_ONE(TYPE##_d64_m2, BF16, 64, false, 2)            \
  ATT_MMA_FORWARD_ONE(TYPE##_d128_m2, BF16, 128, false, 2)
ATT_MMA_FORWARD(bf16, true)
ATT_MMA_FORWARD(f16, false)

// The backward kernels, named attention_backward_mma_[softcap_]{bf16,f16}_d<DH>_r<BR>_w<NW>_b<NB>. The launcher
// takes, per head dimension, the first variant whose shared memory the device lets a block opt in to.
#define ATT_MMA_BACKWARD_CAP(NAME, BF16, DH, BR, NW, NB, CAP)                                                      \
  extern "C" __global__ void __launch_bounds__(NW * 32, 1) attention_backward_mma_##NAME(ATT_BWD_PARAMS) {     \
    att_backward_mma<BF16, DH, BR, NW, NB, CAP>(ATT_BWD_ARGS);                                                 \
  }
#define ATT_MMA_BACKWARD(TYPE, BF16, DH, BR, NW, NB)                                                            \
  ATT_MMA_BACKWARD_CAP(TYPE##_d##DH##_r##BR##_w##NW##_b##NB, BF16, DH, BR, NW, NB, false)                     \
  ATT_MMA_BACKWARD_CAP(softcap_##TYPE##_d##DH##_r##BR##_w##NW##_b##NB, BF16, DH, BR, NW, NB, true)
#define ATT_MMA_BACKWARDS(TYPE, BF16)          \
  ATT_MMA_BACKWARD(TYPE, BF16, 64, 64, 4, 2)   \
  ATT_MMA_BACKWARD(TYPE, BF16, 128, 32, 8, 2)  \
  ATT_MMA_BACKWARD(TYPE, BF16, 128, 16, 4, 1)  \
  ATT_MMA_BACKWARD(TYPE, BF16, 256, 32, 8, 1)
ATT_MMA_BACKWARDS(bf16, true)
ATT_MMA_BACKWARDS(f16, false)
