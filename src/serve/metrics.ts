/** Live values the metrics page reads at scrape time. */
export interface MetricsGauges {
  queueDepth(): number;
  running(): number;
  loadedAdapters(): number;
}

/** How a generation request ended, for loraforge_generations_total. */
export type GenerationEnd = 'stop' | 'length' | 'cancelled' | 'timeout' | 'error';

/** Window over which loraforge_generation_tokens_per_second averages, in milliseconds. */
const RATE_WINDOW_MS = 10_000;

/** Counters and gauges in Prometheus' text exposition format (version 0.0.4). */
export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly generations = new Map<GenerationEnd, number>();
  private promptTokens = 0;
  private generatedTokens = 0;
  /** [performance.now(), tokens] per decode step inside the rate window, oldest first. */
  private readonly recent: [number, number][] = [];
  private readonly createdAt = performance.now();

  constructor(private readonly gauges: MetricsGauges) {}

  recordRequest(route: string, status: number): void {
    const key = `route="${escapeLabel(route)}",status="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  recordGeneration(end: GenerationEnd): void {
    this.generations.set(end, (this.generations.get(end) ?? 0) + 1);
  }

  recordTokens(kind: 'prompt' | 'generated', count: number): void {
    if (kind === 'prompt') {
      this.promptTokens += count;
      return;
    }
    this.generatedTokens += count;
    const now = performance.now();
    this.recent.push([now, count]);
    this.trim(now);
  }

  /** Generated tokens per second over the last ten seconds (or since start, when that is shorter). */
  tokensPerSecond(): number {
    const now = performance.now();
    this.trim(now);
    let total = 0;
    for (const [, n] of this.recent) total += n;
    return total / (Math.max(1, Math.min(RATE_WINDOW_MS, now - this.createdAt)) / 1000);
  }

  render(): string {
    const lines: string[] = [];
    const metric = (name: string, type: 'gauge' | 'counter', help: string, samples: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) lines.push(`${name}${labels ? `{${labels}}` : ''} ${value}`);
    };
    metric('loraforge_queue_depth', 'gauge', 'Requests waiting for a slot in the decode batch.', [['', this.gauges.queueDepth()]]);
    metric('loraforge_running_requests', 'gauge', 'Requests in the decode batch.', [['', this.gauges.running()]]);
    metric('loraforge_loaded_adapters', 'gauge', 'LoRA adapters loaded on the base model.', [['', this.gauges.loadedAdapters()]]);
    metric('loraforge_generation_tokens_per_second', 'gauge', 'Generated tokens per second over the last 10 s.', [['', this.tokensPerSecond()]]);
    metric('loraforge_prompt_tokens_total', 'counter', 'Prompt tokens prefilled.', [['', this.promptTokens]]);
    metric('loraforge_generation_tokens_total', 'counter', 'Tokens generated.', [['', this.generatedTokens]]);
    metric('loraforge_http_requests_total', 'counter', 'HTTP requests answered, by route and status code.', [...this.requests]);
    metric('loraforge_generations_total', 'counter', 'Generation requests by how they ended.', [...this.generations].map(([end, n]) => [`reason="${end}"`, n]));
    const memory = process.memoryUsage();
    // Prometheus' standard process metric name, so that dashboards and bench/soak.ts read the server's own memory.
    metric('process_resident_memory_bytes', 'gauge', 'Resident set size of the server process in bytes.', [['', memory.rss]]);
    // prom-client's names for the parts of it that V8 reports, so that a rise can be told apart: the heap (live objects
    // and garbage not yet collected) or the memory outside it (ArrayBuffers: the CPU backend's tensors, Buffers).
    metric('nodejs_heap_size_total_bytes', 'gauge', 'V8 heap reserved, in bytes.', [['', memory.heapTotal]]);
    metric('nodejs_heap_size_used_bytes', 'gauge', 'V8 heap in use, uncollected garbage included, in bytes.', [['', memory.heapUsed]]);
    metric('nodejs_external_memory_bytes', 'gauge', 'Memory outside the V8 heap owned by JavaScript objects, ArrayBuffers included, in bytes.', [['', memory.external]]);
    metric('nodejs_array_buffers_bytes', 'gauge', 'Memory of ArrayBuffers and SharedArrayBuffers (part of external), in bytes.', [['', memory.arrayBuffers]]);
    return `${lines.join('\n')}\n`;
  }

  private trim(now: number): void {
    while (this.recent.length > 0 && now - this.recent[0]![0] > RATE_WINDOW_MS) this.recent.shift();
  }
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
