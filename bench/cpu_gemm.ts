/**
 * CPU SGEMM throughput of each implementation (the built-in kernel on one thread and on the worker pool, and
 * a CBLAS library when one loads) on the shapes CPU LoRA training produces. Prints one JSON line per case.
 *
 *   npm run build && node dist/bench/cpu_gemm.js               all cases
 *   node dist/bench/cpu_gemm.js --threshold                    one thread vs the pool on growing problems:
 *                                                              where the pool starts to pay off
 *   node dist/bench/cpu_gemm.js --impl=single-thread,workers   some implementations only
 *   node dist/bench/cpu_gemm.js --baseline=OTHER/dist/src/backend/cpu/gemm.js
 *                                                              the built-in kernel of this build against another
 *                                                              build's, on one thread and on every core
 * A baseline build of an older commit: git archive REV | tar -x -C /tmp/old && ln -s "$PWD/node_modules"
 * /tmp/old/node_modules && (cd /tmp/old && npx tsc).
 */
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import * as thisBuild from '../src/backend/cpu/gemm.js';
import type { GemmImplementation, SgemmArgs } from '../src/backend/cpu/gemm.js';
import { gemmOperand } from '../test/helpers/gemm.js';

type GemmModule = Pick<typeof thisBuild, 'configureGemm' | 'gemmInfo' | 'sgemm'>;

interface Case {
  readonly name: string;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly transA?: boolean;
  readonly transB?: boolean;
  readonly batch?: number;
}

/** Shapes of the bench/cpu_forward.ts model (hidden 512, intermediate 1408, 8 heads of 64, 4 x 256 tokens, LoRA r16). */
const CASES: Case[] = [
  { name: 'square', m: 1024, n: 512, k: 512 },
  { name: 'mlp-up x@W^T', m: 4096, n: 1408, k: 512, transB: true },
  { name: 'mlp-down x@W^T', m: 4096, n: 512, k: 1408, transB: true },
  { name: 'mlp-down dX=dY@W', m: 4096, n: 1408, k: 512 },
  { name: 'weight grad dW=dY^T@X', m: 512, n: 512, k: 4096, transA: true },
  { name: 'lora-A x@A^T', m: 4096, n: 16, k: 512, transB: true },
  { name: 'lora-B h@B^T', m: 4096, n: 512, k: 16, transB: true },
  { name: 'attention scores Q@K^T', m: 256, n: 256, k: 64, transB: true, batch: 32 },
  { name: 'attention values P@V', m: 256, n: 64, k: 256, batch: 32 },
  { name: 'decode x@W^T', m: 1, n: 1408, k: 512, transB: true },
];

/**
 * The --baseline shapes: Linear layers (x @ W^T) of a 1B-class model (hidden 2048, intermediate 8192), the
 * backward of the small bench model, and decode steps.
 */
const BASELINE_CASES: Case[] = [
  { name: 'linear 512x2048x2048', m: 512, n: 2048, k: 2048, transB: true },
  { name: 'mlp-up 256x8192x2048', m: 256, n: 8192, k: 2048, transB: true },
  { name: 'mlp-down 256x2048x8192', m: 256, n: 2048, k: 8192, transB: true },
  { name: 'backward dX 1024x1408x512', m: 1024, n: 1408, k: 512 },
  { name: 'backward dW 512x512x4096', m: 512, n: 512, k: 4096, transA: true },
  { name: 'decode 16x2048x2048', m: 16, n: 2048, k: 2048, transB: true },
  { name: 'decode 1x2048x2048', m: 1, n: 2048, k: 2048, transB: true },
  { name: 'decode 1x8192x2048', m: 1, n: 8192, k: 2048, transB: true },
  { name: 'decode 1x1408x512', m: 1, n: 1408, k: 512, transB: true },
  { name: 'decode 1x2048x2048 B row-major', m: 1, n: 2048, k: 2048 },
];

const args = process.argv.slice(2);
const implArg = args.find((a) => a.startsWith('--impl='))?.slice('--impl='.length);
const threshold = args.includes('--threshold');
const baselinePath = args.find((a) => a.startsWith('--baseline='))?.slice('--baseline='.length);

function problem(c: Case): SgemmArgs {
  const batch = c.batch ?? 1;
  const transA = c.transA ?? false;
  const transB = c.transB ?? false;
  return {
    m: c.m, n: c.n, k: c.k, transA, transB,
    a: gemmOperand(batch * c.m * c.k, 1), aOffset: 0, lda: transA ? c.m : c.k,
    b: gemmOperand(batch * c.k * c.n, 2), bOffset: 0, ldb: transB ? c.k : c.n,
    c: new Float32Array(new SharedArrayBuffer(batch * c.m * c.n * 4)), cOffset: 0, ldc: c.n,
    alpha: 1, beta: 0, batch, strideA: c.m * c.k, strideB: c.k * c.n, strideC: c.m * c.n,
  };
}

/**
 * Best and median wall seconds per call, and the median process CPU seconds per call (all threads summed),
 * timing for at least `minSeconds` after two warm-up calls. On a shared machine whose cores are time-sliced
 * the CPU time still says what the work costs; CPU time close to wall time x threads says the threads overlapped.
 */
function time(p: SgemmArgs, minSeconds: number, gemm: GemmModule = thisBuild): { best: number; median: number; cpu: number } {
  gemm.sgemm(p);
  gemm.sgemm(p);
  const samples: number[] = [];
  const cpu: number[] = [];
  const start = performance.now();
  while (samples.length < 3 || performance.now() - start < minSeconds * 1000) {
    const t = performance.now();
    const c = process.cpuUsage();
    gemm.sgemm(p);
    const used = process.cpuUsage(c);
    samples.push((performance.now() - t) / 1000);
    cpu.push((used.user + used.system) / 1e6);
  }
  const sorted = (xs: number[]): number[] => xs.sort((x, y) => x - y);
  const median = (xs: number[]): number => sorted(xs)[Math.floor(xs.length / 2)]!;
  return { best: sorted(samples)[0]!, median: median(samples), cpu: median(cpu) };
}

function available(): GemmImplementation[] {
  const all: GemmImplementation[] = ['single-thread', 'workers'];
  thisBuild.configureGemm({ implementation: 'auto' });
  if (thisBuild.gemmInfo().implementation === 'openblas') all.push('openblas');
  return implArg ? all.filter((i) => implArg.split(',').includes(i)) : all;
}

if (baselinePath) {
  const baseline = (await import(pathToFileURL(baselinePath).href)) as GemmModule;
  for (const c of BASELINE_CASES) {
    const p = problem(c);
    const flops = 2 * c.m * c.n * c.k;
    for (const threads of [...new Set([1, availableParallelism()])]) {
      const measure = (build: string, gemm: GemmModule): { gflops: number; gflopsCpu: number } => {
        gemm.configureGemm({ implementation: threads === 1 ? 'single-thread' : 'workers', threads });
        const { median, cpu } = time(p, 2, gemm);
        const line = { case: c.name, build, threads, gflops: +(flops / median / 1e9).toFixed(2), gflopsCpu: +(flops / cpu / 1e9).toFixed(2), ms: +(median * 1e3).toFixed(2) };
        console.log(JSON.stringify(line));
        return line;
      };
      const now = measure('this build', thisBuild);
      const before = measure(baselinePath, baseline);
      console.log(JSON.stringify({ case: c.name, threads, speedup: +(now.gflops / before.gflops).toFixed(2), speedupCpu: +(now.gflopsCpu / before.gflopsCpu).toFixed(2) }));
    }
  }
} else if (threshold) {
  // Square-ish problems around the crossover, smallest first; parallelMinFlops 0 forces the pool.
  thisBuild.configureGemm({ parallelMinFlops: 0 });
  for (const [m, n, k] of [[4, 4, 4], [16, 16, 64], [32, 32, 64], [32, 64, 64], [64, 64, 64], [64, 64, 128], [64, 128, 128], [128, 128, 128], [128, 128, 256], [256, 256, 256]] as const) {
    const p = problem({ name: 'threshold', m, n, k });
    thisBuild.configureGemm({ implementation: 'single-thread' });
    const single = time(p, 0.5);
    thisBuild.configureGemm({ implementation: 'workers' });
    const workers = time(p, 0.5);
    console.log(JSON.stringify({
      m, n, k, flops: 2 * m * n * k,
      singleUs: +(single.median * 1e6).toFixed(1), workersUs: +(workers.median * 1e6).toFixed(1), speedup: +(single.median / workers.median).toFixed(2),
      singleBestUs: +(single.best * 1e6).toFixed(1), workersBestUs: +(workers.best * 1e6).toFixed(1), speedupBest: +(single.best / workers.best).toFixed(2),
      singleCpuUs: +(single.cpu * 1e6).toFixed(1), workersCpuUs: +(workers.cpu * 1e6).toFixed(1),
    }));
  }
} else {
  for (const impl of available()) {
    thisBuild.configureGemm({ implementation: impl });
    const info = thisBuild.gemmInfo();
    for (const c of CASES) {
      const p = problem(c);
      const { best, median, cpu } = time(p, 1);
      const flops = 2 * c.m * c.n * c.k * (c.batch ?? 1);
      console.log(JSON.stringify({
        impl, threads: info.threads, case: c.name, m: c.m, n: c.n, k: c.k, batch: c.batch ?? 1,
        transA: c.transA ?? false, transB: c.transB ?? false,
        gflops: +(flops / median / 1e9).toFixed(2), gflopsBest: +(flops / best / 1e9).toFixed(2), ms: +(median * 1e3).toFixed(3),
        cpuMs: +(cpu * 1e3).toFixed(3),
        ...(info.library ? { library: info.library } : {}),
      }));
    }
  }
}
