/**
 * Metric families in Prometheus' text exposition format (version 0.0.4): each renders its HELP and TYPE lines and
 * its samples, label values escaped. Label sets are kept in first-seen order, so a scrape's lines are stable.
 */

export type Labels = Readonly<Record<string, string>>;

/** `{a="x",b="y"}` (empty for no labels); values escape backslash, double quote and newline as the format asks. */
function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length > 0 ? `{${parts.join(',')}}` : '';
}

/** HELP text escapes backslash and newline. */
function header(name: string, type: string, help: string): string[] {
  return [`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`];
}

/** A number as the format writes it: Go's float syntax, infinities as +Inf / -Inf. */
function valueText(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** A gauge family of one unlabelled sample. */
export function gaugeLines(name: string, help: string, value: number): string[] {
  return [...header(name, 'gauge', help), `${name} ${valueText(value)}`];
}

/** A monotonically increasing count per label set; `name` ends in _total. */
export class Counter {
  private readonly values = new Map<string, { labels: Labels; value: number }>();

  constructor(
    readonly name: string,
    private readonly help: string,
  ) {}

  inc(labels: Labels, by = 1): void {
    const key = labelText(labels);
    const entry = this.values.get(key);
    if (entry) entry.value += by;
    else this.values.set(key, { labels, value: by });
  }

  lines(): string[] {
    return [...header(this.name, 'counter', this.help), ...[...this.values].map(([key, e]) => `${this.name}${key} ${valueText(e.value)}`)];
  }
}

interface HistogramSeries {
  readonly labels: Labels;
  /** Observations <= bounds[i], not cumulative (rendering sums them). */
  readonly counts: number[];
  sum: number;
  count: number;
}

/** Observations sorted into fixed upper bounds per label set: _bucket{le} (cumulative, ending in +Inf), _sum, _count. */
export class Histogram {
  private readonly series = new Map<string, HistogramSeries>();

  constructor(
    readonly name: string,
    private readonly help: string,
    /** Upper bounds, ascending; +Inf is added. */
    private readonly bounds: readonly number[],
  ) {}

  observe(labels: Labels, value: number): void {
    const key = labelText(labels);
    let s = this.series.get(key);
    if (!s) {
      s = { labels, counts: new Array<number>(this.bounds.length + 1).fill(0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    const i = this.bounds.findIndex((b) => value <= b);
    s.counts[i === -1 ? this.bounds.length : i]!++;
    s.sum += value;
    s.count++;
  }

  lines(): string[] {
    const lines = header(this.name, 'histogram', this.help);
    for (const s of this.series.values()) {
      let cumulative = 0;
      [...this.bounds, Infinity].forEach((bound, i) => {
        cumulative += s.counts[i]!;
        lines.push(`${this.name}_bucket${labelText({ ...s.labels, le: valueText(bound) })} ${cumulative}`);
      });
      lines.push(`${this.name}_sum${labelText(s.labels)} ${valueText(s.sum)}`, `${this.name}_count${labelText(s.labels)} ${s.count}`);
    }
    return lines;
  }
}
