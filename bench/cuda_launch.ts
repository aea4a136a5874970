// Kernel-launch overhead through koffi: the host cost of one Backend call (argument packing + cuLaunchKernel),
// the raw FFI call with arguments already packed, and the device-side time per launch of a one-element kernel.
// Usage: node dist/bench/cuda_launch.js [launches=20000]
import { CudaBackend } from '../src/backend/cuda/index.js';
import type { CudaBuffer } from '../src/backend/cuda/cuda-buffer.js';

const launches = Number(process.argv[2] ?? 20000);
const be = new CudaBackend('cuda', 0);
const { driver, stream, params, kernels } = be.runtime;
const x = be.fromHost('float32', Float32Array.from([1])) as CudaBuffer;
const y = be.alloc('float32', 1) as CudaBuffer;

function hostMicroseconds(body: () => void): number {
  const t0 = performance.now();
  for (let i = 0; i < launches; i++) body();
  return ((performance.now() - t0) * 1e3) / launches;
}

const backendCall = (): void => be.affine(x, 0, y, 1, 2, 1);
for (let i = 0; i < 1000; i++) backendCall();
await be.synchronize();

const start = driver.eventCreate();
const end = driver.eventCreate();
driver.eventRecord(start, stream);
const perCall = hostMicroseconds(backendCall);
driver.eventRecord(end, stream);
await be.synchronize();
const devicePerLaunch = (driver.eventElapsedMs(start, end) * 1e3) / launches;

// The same kernel with its arguments packed once: what remains is koffi's call into cuLaunchKernel.
const fn = kernels.fn('elementwise', 'affine');
params.begin().ptr(x.at(0)).i32(0).ptr(y.at(0)).i32(0).i64(1).f64(2).f64(1);
const rawArgs = [fn, 1, 1, 1, 32, 1, 1, 0, stream, params.kernelParams, 0] as const;
const raw = hostMicroseconds(() => {
  driver.cuLaunchKernel(...rawArgs);
});
await be.synchronize();
const value = ((await be.toHost(y, 0, 1)) as Float32Array)[0];
console.log(
  `cuda_launch: ${launches} launches of a 1-element kernel: Backend.affine ${perCall.toFixed(2)} us/call on the host, ` +
    `raw cuLaunchKernel through koffi ${raw.toFixed(2)} us/call, device time ${devicePerLaunch.toFixed(2)} us/launch back to back (y=${value})`,
);
driver.eventDestroy(start);
driver.eventDestroy(end);
