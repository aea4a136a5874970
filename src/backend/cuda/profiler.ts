import type { Driver } from './driver.js';

/** Device time spent in one kind of launch between start() and report(). */
export interface ProfileEntry {
  /** Kernel as "family/name" (with ":op=N" for kernels that take an op code first), or "gemm <types> m x n x k". */
  readonly name: string;
  readonly calls: number;
  /** Milliseconds of device time, summed over calls. */
  readonly ms: number;
}

interface Interval {
  readonly name: string;
  readonly start: number;
  readonly end: number;
}

/**
 * Opt-in device timing per launch: while active, every kernel launch and cuBLAS call on the runtime's stream is
 * bracketed by a pair of CUDA events, and report() sums the elapsed times by name. Costs two event records per
 * launch on the host (a few microseconds), nothing on the device, and nothing at all while inactive. Events are
 * pooled and reused across reports. Memsets and copies queued by the backend are not bracketed: the gap between
 * the summed kernel time and a step's event-timed total is that plus idle time.
 */
export class LaunchProfiler {
  private readonly pool: number[] = [];
  private intervals: Interval[] = [];
  private pendingName: string | null = null;
  private pendingStart = 0;
  active = false;

  constructor(
    private readonly driver: Driver,
    private readonly stream: number,
  ) {}

  private event(): number {
    return this.pool.pop() ?? this.driver.eventCreate();
  }

  /** Starts (or restarts) recording; intervals recorded earlier and not reported are dropped. */
  start(): void {
    this.recycle();
    this.active = true;
  }

  /** Marks the start of a launch called `name`; end() marks its end. Launches never nest. */
  begin(name: string): void {
    const start = this.event();
    this.driver.eventRecord(start, this.stream);
    this.pendingName = name;
    this.pendingStart = start;
  }

  end(): void {
    if (this.pendingName === null) return;
    const end = this.event();
    this.driver.eventRecord(end, this.stream);
    this.intervals.push({ name: this.pendingName, start: this.pendingStart, end });
    this.pendingName = null;
  }

  /** Stops recording, waits for the stream, and returns the time per name, largest first. */
  report(): ProfileEntry[] {
    this.active = false;
    this.driver.streamSynchronize(this.stream);
    const totals = new Map<string, { calls: number; ms: number }>();
    for (const { name, start, end } of this.intervals) {
      const t = totals.get(name) ?? { calls: 0, ms: 0 };
      t.calls += 1;
      t.ms += this.driver.eventElapsedMs(start, end);
      totals.set(name, t);
    }
    this.recycle();
    return [...totals].map(([name, t]) => ({ name, calls: t.calls, ms: t.ms })).sort((a, b) => b.ms - a.ms);
  }

  private recycle(): void {
    for (const { start, end } of this.intervals) this.pool.push(start, end);
    this.intervals = [];
  }
}
