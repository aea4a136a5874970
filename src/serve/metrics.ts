import { Counter, gaugeLines, Histogram, type Labels } from './prometheus.js';
import type { SequenceObserver } from './sequence.js';

/** Live values the metrics page reads at scrape time. */
export interface MetricsGauges {
  queueDepth(): number;
  running(): number;
  loadedAdapters(): number;
}

/**
 * How a generation request ended (the finished_reason label): stop, length (some choice reached max_tokens),
 * abort (the client disconnected first), timeout (--request-timeout), error (a failed step, shutdown).
 */
export type RequestOutcome = 'stop' | 'length' | 'abort' | 'timeout' | 'error';

// vLLM's bucket bounds (vllm:time_to_first_token_seconds, vllm:time_per_output_token_seconds and
// vllm:e2e_request_latency_seconds / vllm:request_queue_time_seconds), so that dashboards built for it read these.
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
const TPOT_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const LATENCY_BUCKETS = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];

/**
 * The server's metrics in Prometheus' text format. Everything is a counter, a histogram or a gauge read at scrape
 * time: rates are the scraper's to compute (rate(loraforge_generation_tokens_total[1m])). Generation metrics carry
 * model_name: the base model's or the adapter's name the request sent.
 */
export class Metrics {
  private readonly http = new Counter('loraforge_http_requests_total', 'HTTP requests answered, by route and status code.');
  private readonly families = requestFamilies();

  constructor(private readonly gauges: MetricsGauges) {}

  recordHttp(route: string, status: number): void {
    this.http.inc({ route, status: String(status) });
  }

  /** Metrics of one generation request for `model`, which arrived at `arrivedAt` (performance.now() milliseconds). */
  track(model: string, arrivedAt: number): RequestMetrics {
    return new RequestMetrics({ model_name: model }, arrivedAt, this.families);
  }

  render(): string {
    const lines = [
      ...gaugeLines('loraforge_queue_depth', 'Sequences waiting for a slot in the decode batch.', this.gauges.queueDepth()),
      ...gaugeLines('loraforge_running_requests', 'Sequences in the decode batch.', this.gauges.running()),
      ...gaugeLines('loraforge_loaded_adapters', 'LoRA adapters loaded on the base model.', this.gauges.loadedAdapters()),
      ...this.http.lines(),
      ...Object.values(this.families).flatMap((family) => family.lines()),
    ];
    const memory = process.memoryUsage();
    lines.push(
      // Prometheus' standard process metric name, so that dashboards and bench/soak.ts read the server's own memory.
      ...gaugeLines('process_resident_memory_bytes', 'Resident set size of the server process in bytes.', memory.rss),
      // prom-client's names for the parts of it that V8 reports, so that a rise can be told apart: the heap (live
      // objects and garbage not yet collected) or the memory outside it (ArrayBuffers: the CPU backend's tensors, Buffers).
      ...gaugeLines('nodejs_heap_size_total_bytes', 'V8 heap reserved, in bytes.', memory.heapTotal),
      ...gaugeLines('nodejs_heap_size_used_bytes', 'V8 heap in use, uncollected garbage included, in bytes.', memory.heapUsed),
      ...gaugeLines('nodejs_external_memory_bytes', 'Memory outside the V8 heap owned by JavaScript objects, ArrayBuffers included, in bytes.', memory.external),
      ...gaugeLines('nodejs_array_buffers_bytes', 'Memory of ArrayBuffers and SharedArrayBuffers (part of external), in bytes.', memory.arrayBuffers),
    );
    return `${lines.join('\n')}\n`;
  }
}

interface RequestFamilies {
  readonly requests: Counter;
  readonly promptTokens: Counter;
  readonly cachedPromptTokens: Counter;
  readonly generationTokens: Counter;
  readonly queueTime: Histogram;
  readonly ttft: Histogram;
  readonly tpot: Histogram;
  readonly e2e: Histogram;
}

function requestFamilies(): RequestFamilies {
  return {
    requests: new Counter(
      'loraforge_requests_total',
      'Generation requests ended, by model and finished_reason: stop, length (a choice reached max_tokens), abort (the client disconnected), timeout, error.',
    ),
    promptTokens: new Counter('loraforge_prompt_tokens_total', 'Prompt tokens of requests whose prefill began (once per request, however many sequences), by model.'),
    cachedPromptTokens: new Counter(
      'loraforge_prompt_cached_tokens_total',
      "Prompt tokens of those whose keys and values came from the prefix cache (the request's first sequence; 0 without --enable-prefix-caching), by model.",
    ),
    generationTokens: new Counter('loraforge_generation_tokens_total', 'Tokens generated, by model: every sequence of n and best_of, stop tokens included.'),
    queueTime: new Histogram('loraforge_request_queue_time_seconds', 'Seconds a request waited in the queue before its first sequence was prefilled.', LATENCY_BUCKETS),
    ttft: new Histogram('loraforge_time_to_first_token_seconds', "Seconds from a request's acceptance (body parsed and tokenized) to its first generated token.", TTFT_BUCKETS),
    tpot: new Histogram(
      'loraforge_time_per_output_token_seconds',
      'Mean seconds between consecutive tokens of one sequence, observed once per sequence of two or more tokens when it ends.',
      TPOT_BUCKETS,
    ),
    e2e: new Histogram('loraforge_e2e_request_latency_seconds', "Seconds from a request's acceptance (body parsed and tokenized) to its end, whatever the outcome.", LATENCY_BUCKETS),
  };
}

/** performance.now() milliseconds of a sequence's first and last tokens, and how many it generated. */
interface SequenceTimes {
  first: number;
  last: number;
  tokens: number;
}

/**
 * One request's share of the metrics. Queue time and time to first token are observed when they happen, tokens
 * counted as they are generated; the outcome, end-to-end latency and each sequence's time per output token at end().
 */
export class RequestMetrics {
  private readonly queuedAt = performance.now();
  private scheduled = false;
  private firstToken = false;
  private readonly sequences: SequenceTimes[] = [];

  constructor(
    private readonly labels: Labels,
    private readonly arrivedAt: number,
    private readonly families: RequestFamilies,
  ) {}

  /** The observer of one of the request's sequences; `promptTokens` is counted when the first of them is prefilled. */
  sequence(promptTokens: number): SequenceObserver {
    const times: SequenceTimes = { first: 0, last: 0, tokens: 0 };
    this.sequences.push(times);
    return {
      scheduled: (cachedTokens) => {
        if (this.scheduled) return;
        this.scheduled = true;
        this.families.queueTime.observe(this.labels, (performance.now() - this.queuedAt) / 1000);
        this.families.promptTokens.inc(this.labels, promptTokens);
        this.families.cachedPromptTokens.inc(this.labels, cachedTokens);
      },
      generated: () => {
        const now = performance.now();
        if (times.tokens === 0) times.first = now;
        times.last = now;
        times.tokens++;
        this.families.generationTokens.inc(this.labels);
        if (this.firstToken) return;
        this.firstToken = true;
        this.families.ttft.observe(this.labels, (now - this.arrivedAt) / 1000);
      },
    };
  }

  /** Counts the request with how it ended; called once, when its last sequence has ended. */
  end(outcome: RequestOutcome): void {
    this.families.requests.inc({ ...this.labels, finished_reason: outcome });
    this.families.e2e.observe(this.labels, (performance.now() - this.arrivedAt) / 1000);
    for (const s of this.sequences) if (s.tokens >= 2) this.families.tpot.observe(this.labels, (s.last - s.first) / 1000 / (s.tokens - 1));
  }
}
