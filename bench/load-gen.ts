/**
 * The load generator's arithmetic, apart from any server: a seeded schedule of requests (Poisson arrivals, prompt and
 * output lengths drawn from a lognormal clipped to the model's context, a model chosen uniformly among the base and
 * its adapters, prompt token ids drawn uniformly) and nearest-rank percentiles. bench/load.ts sends the schedule.
 */
import { mulberry32 } from '../test/helpers/numeric.js';

/** The seed of one rate's schedule: the run's seed and the rate's place in --rates, mixed (splitmix32's finalizer). */
export function streamSeed(seed: number, stream: number): number {
  let h = (Math.imul(seed >>> 0, 0x9e3779b9) + Math.imul(stream + 1, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x21f0aaad);
  h = Math.imul(h ^ (h >>> 15), 0x735a2d97);
  return (h ^ (h >>> 15)) >>> 0;
}

export interface ScheduleOptions {
  readonly seed: number;
  /** Mean arrivals per second. */
  readonly rate: number;
  /** Arrivals fall in [0, durationS). */
  readonly durationS: number;
  /** Means of the lognormal lengths before clipping. */
  readonly promptMean: number;
  readonly outputMean: number;
  /** Standard deviation of the lengths' logarithm (1: p99 about 6x the median). */
  readonly sigma: number;
  /** Positions the model holds: prompt + output never exceed it. */
  readonly maxContext: number;
  /** Prompt ids are drawn from [0, vocabSize). */
  readonly vocabSize: number;
  /** The served model names (base and adapters) requests are spread over. */
  readonly models: readonly string[];
}

export interface ScheduledRequest {
  /** Milliseconds after the rate's start at which the request is sent. */
  readonly atMs: number;
  readonly model: string;
  readonly promptIds: readonly number[];
  /** Tokens the request generates (max_tokens = min_tokens, EOS ignored). */
  readonly outputTokens: number;
}

/** A lognormal draw with the given mean: exp(mu + sigma z), mu = ln(mean) - sigma^2 / 2, z by Box-Muller. */
function lognormal(uniform: () => number, mean: number, sigma: number): number {
  const z = Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return Math.exp(Math.log(mean) - (sigma * sigma) / 2 + sigma * z);
}

const clip = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, Math.round(x)));

/**
 * Every request of one rate, in arrival order; the same options give the same schedule. Gaps between arrivals are
 * exponential with mean 1/rate; the prompt is clipped to [1, maxContext - 1] tokens, the output to
 * [1, maxContext - prompt].
 */
export function schedule(o: ScheduleOptions): ScheduledRequest[] {
  if (!(o.rate > 0) || !(o.durationS > 0)) throw new Error(`rate (${o.rate}) and duration (${o.durationS}) must be positive.`);
  if (!(o.promptMean >= 1) || !(o.outputMean >= 1) || !(o.sigma >= 0)) throw new Error('prompt and output means must be at least 1 and sigma at least 0.');
  if (!(o.maxContext >= 2)) throw new Error(`maxContext (${o.maxContext}) must hold at least one prompt and one output token.`);
  if (o.models.length === 0) throw new Error('no models to send requests to.');
  const uniform = mulberry32(o.seed);
  const out: ScheduledRequest[] = [];
  let t = 0;
  for (;;) {
    t += -Math.log(1 - uniform()) / o.rate;
    if (t >= o.durationS) return out;
    const model = o.models[Math.floor(uniform() * o.models.length)]!;
    const promptLen = clip(lognormal(uniform, o.promptMean, o.sigma), 1, o.maxContext - 1);
    const outputTokens = clip(lognormal(uniform, o.outputMean, o.sigma), 1, o.maxContext - promptLen);
    const promptIds = Array.from({ length: promptLen }, () => Math.floor(uniform() * o.vocabSize));
    out.push({ atMs: t * 1000, model, promptIds, outputTokens });
  }
}

/** The nearest-rank percentile (p in (0, 100]) of the values: the smallest value with at least p% of them at or below it; null when there are none. */
export function percentile(values: readonly number[], p: number): number | null {
  if (!(p > 0 && p <= 100)) throw new Error(`percentile ${p} is outside (0, 100].`);
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil((p * sorted.length) / 100)) - 1]!;
}
