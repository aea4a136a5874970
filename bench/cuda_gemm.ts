// bf16 GEMM throughput through the CUDA backend's cuBLAS binding (float32 accumulation), on random data.
// Usage: node dist/bench/cuda_gemm.js [size=8192] [iterations=20]
import { CudaBackend } from '../src/backend/cuda/index.js';

const size = Number(process.argv[2] ?? 8192);
const iterations = Number(process.argv[3] ?? 20);

/** Random bf16 bit patterns, magnitudes in [0.5, 1) with random signs (never zeros: zeros run faster than real data). */
function randomBf16(n: number, seed: number): Uint16Array {
  const out = new Uint16Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    // sign | exponent of 0.5 | 7 random mantissa bits: magnitudes in [0.5, 1)
    out[i] = (s & 0x8000) | 0x3f00 | (s & 0x7f);
  }
  return out;
}

const be = new CudaBackend('cuda', 0);
const { driver, stream } = be.runtime;
console.log(`cuda_gemm: ${JSON.stringify(be.info)} ${JSON.stringify(be.runtime.libraries)}`);
const n = size * size;
const a = be.fromHost('bfloat16', randomBf16(n, 1));
const b = be.fromHost('bfloat16', randomBf16(n, 2));
const c = be.alloc('bfloat16', n);
const gemm = (): void =>
  be.matmul({
    a, aOffset: 0, b, bOffset: 0, c, cOffset: 0, m: size, n: size, k: size, transA: false, transB: false,
    lda: size, ldb: size, ldc: size, batch: 1, strideA: 0, strideB: 0, strideC: 0, alpha: 1, beta: 0,
  });
for (let i = 0; i < 3; i++) gemm();
await be.synchronize();

const events = Array.from({ length: iterations + 1 }, () => driver.eventCreate());
driver.eventRecord(events[0]!, stream);
for (let i = 0; i < iterations; i++) {
  gemm();
  driver.eventRecord(events[i + 1]!, stream);
}
await be.synchronize();
const ms = Array.from({ length: iterations }, (_, i) => driver.eventElapsedMs(events[i]!, events[i + 1]!)).sort((x, y) => x - y);
const median = ms[Math.floor(iterations / 2)]!;
const tflops = (ms_: number): number => (2 * size ** 3) / (ms_ * 1e-3) / 1e12;
const sample = (await be.toHost(c, 0, 4)) as Uint16Array;
console.log(
  `cuda_gemm: bf16 ${size}x${size}x${size} on ${be.info.name}: median ${median.toFixed(3)} ms = ${tflops(median).toFixed(1)} TFLOP/s ` +
    `(best ${tflops(ms[0]!).toFixed(1)}, worst ${tflops(ms[iterations - 1]!).toFixed(1)}; ${iterations} runs; c[0..3] bits ${Array.from(sample).join(',')})`,
);
for (const e of events) driver.eventDestroy(e);
