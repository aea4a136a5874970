// Counter-based random fills: element i of a fill with `seed` depends only on (seed, i), so a buffer filled in
// one launch or in pieces, on any grid, holds the same values. The generator is splitmix64's finaliser applied
// to seed * golden + i (a bijection of the counter, so no two elements of one fill share a state).
//
//   random_uniform: out[i] = lo + (hi - lo) * u,            u in [0, 1) from the top 24 bits of hash(i)
//   random_normal:  out[i] = mean + std * sqrt(-2 ln u1) * cos(2 pi u2), u1 in (0, 1], u2 in [0, 1),
//                   both drawn from one 64-bit hash (24 bits each)
//   random_bytes:   out[i] = low byte of hash(i), uniform over 0..255 (packed NF4 codes, 8-bit scale codes)
//
// Values are rounded to the buffer's dtype on store (round to nearest even for bfloat16/float16).

#define SPLITMIX_GOLDEN 0x9e3779b97f4a7c15ull

__device__ __forceinline__ u64 splitmix64(u64 x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

__device__ __forceinline__ u64 counter_hash(u64 seed, i64 i) { return splitmix64(seed * SPLITMIX_GOLDEN + (u64)i); }

// 24 random bits as a float in [0, 1): exact in float32.
__device__ __forceinline__ float unit_float(u64 bits24) { return (float)(bits24 & 0xffffffull) * (1.0f / 16777216.0f); }

extern "C" __global__ void random_uniform(void* out, int outDt, i64 n, u64 seed, float lo, float hi) {
  GRID_STRIDE(i, n) {
    const float u = unit_float(counter_hash(seed, i) >> 40);
    store_f(out, outDt, i, lo + (hi - lo) * u);
  }
}

extern "C" __global__ void random_normal(void* out, int outDt, i64 n, u64 seed, float mean, float stddev) {
  GRID_STRIDE(i, n) {
    const u64 h = counter_hash(seed, i);
    const float u1 = 1.0f - unit_float(h >> 40);
    const float u2 = unit_float(h >> 16);
    const float z = sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
    store_f(out, outDt, i, mean + stddev * z);
  }
}

extern "C" __global__ void random_bytes(unsigned char* out, i64 n, u64 seed) {
  GRID_STRIDE(i, n) out[i] = (unsigned char)(counter_hash(seed, i) & 0xffull);
}
