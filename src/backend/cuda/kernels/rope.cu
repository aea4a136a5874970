// Rotary position embedding, rotate-half convention (transformers' Llama), forward and inverse (= backward).
// x is [batch, seq, heads, headDim]; cos/sin are [seq, rotaryDim] per batch item, tableBatchStride apart.
// The first rotaryDim elements of each head rotate and the rest are copied (partial rotary, transformers'
// Phi-3). With h = rotaryDim / 2 and i < h:
//
//   forward:  y_i     = x_i * cos_i     - x_{i+h} * sin_i
//             y_{i+h} = x_{i+h} * cos_{i+h} + x_i * sin_{i+h}
//   inverse:  y_i     = x_i * cos_i     + x_{i+h} * sin_{i+h}      (the transposed rotation)
//             y_{i+h} = x_{i+h} * cos_{i+h} - x_i * sin_i
//   both:     y_j     = x_j                                        for rotaryDim <= j < headDim
//
// Each head has h + (headDim - rotaryDim) work items: one thread per (i, i+h) pair, which reads both inputs
// before writing, and one per passed-through element, so out may alias x. A warp takes one (b, t, head) row
// at a time (blockDim = (32, warps)), so the row's position and table offset are divided out once per row.
// The forward rounds each product to float32 as the CPU does; the inverse computes in float64 as the CPU does.

extern "C" __global__ void rope(const void* x, int xDt, const void* cosT, int cosDt, const void* sinT, int sinDt, void* y, int yDt,
                                i64 tableBatchStride, i64 batch, i64 seq, i64 heads, i64 headDim, i64 rotaryDim, int inverse) {
  const int half = (int)(rotaryDim / 2);
  const int perHead = (int)(headDim - half);
  const i64 rows = batch * seq * heads;
  for (i64 row = (i64)blockIdx.x * blockDim.y + threadIdx.y; row < rows; row += (i64)gridDim.x * blockDim.y) {
    const i64 o = row * headDim;
    const i64 t = (row / heads) % seq;
    const i64 b = row / (heads * seq);
    const i64 tb = b * tableBatchStride + t * rotaryDim;
    for (int i = threadIdx.x; i < perHead; i += 32) {
      if (i >= half) {
        const i64 j = rotaryDim + (i - half);
        store_f(y, yDt, o + j, load_f(x, xDt, o + j));
        continue;
      }
      const float x1 = load_f(x, xDt, o + i), x2 = load_f(x, xDt, o + i + half);
      const float c1 = load_f(cosT, cosDt, tb + i), c2 = load_f(cosT, cosDt, tb + i + half);
      const float s1 = load_f(sinT, sinDt, tb + i), s2 = load_f(sinT, sinDt, tb + i + half);
      float y1, y2;
      if (!inverse) {
        y1 = x1 * c1 - x2 * s1;
        y2 = x2 * c2 + x1 * s2;
      } else {
        y1 = (float)((double)x1 * c1 + (double)x2 * s2);
        y2 = (float)((double)x2 * c2 - (double)x1 * s1);
      }
      store_f(y, yDt, o + i, y1);
      store_f(y, yDt, o + i + half, y2);
    }
  }
}
