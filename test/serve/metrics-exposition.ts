/**
 * A strict reader of Prometheus' text exposition format 0.0.4, for the suites to check /metrics on machines without
 * promtool: it throws, naming the line, on anything the format forbids or that promtool's lint reports for what
 * this server writes (a family without HELP or TYPE, a counter not ending in _total, a histogram whose buckets
 * decrease or whose +Inf bucket differs from its _count).
 */

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  readonly help: string;
  readonly samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const FLOAT = /^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf|NaN)$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

class ExpositionError extends Error {
  constructor(line: number, message: string) {
    super(`line ${line}: ${message}`);
  }
}

function parseFloatText(text: string, line: number): number {
  if (!FLOAT.test(text)) throw new ExpositionError(line, `"${text}" is not a float`);
  if (/Inf$/.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  return Number(text);
}

/** Reads `{a="x",b="y"}` starting at text[0] === '{'; returns the labels and the rest after '}'. */
function parseLabels(text: string, line: number): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 1;
  while (text[i] !== '}') {
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new ExpositionError(line, 'label without "="');
    const name = text.slice(i, eq);
    if (!LABEL_NAME.test(name) || name.startsWith('__')) throw new ExpositionError(line, `invalid label name "${name}"`);
    if (Object.hasOwn(labels, name)) throw new ExpositionError(line, `label "${name}" repeated`);
    if (text[eq + 1] !== '"') throw new ExpositionError(line, `label "${name}" value is not quoted`);
    let value = '';
    let j = eq + 2;
    for (;;) {
      const c = text[j];
      if (c === undefined) throw new ExpositionError(line, `label "${name}" value is not terminated`);
      if (c === '"') break;
      if (c === '\n') throw new ExpositionError(line, 'raw newline in a label value');
      if (c === '\\') {
        const next = text[j + 1];
        if (next === '\\') value += '\\';
        else if (next === '"') value += '"';
        else if (next === 'n') value += '\n';
        else throw new ExpositionError(line, `invalid escape "\\${next ?? ''}" in label "${name}"`);
        j += 2;
        continue;
      }
      value += c;
      j++;
    }
    labels[name] = value;
    i = j + 1;
    if (text[i] === ',') i++;
    else if (text[i] !== '}') throw new ExpositionError(line, `expected "," or "}" after label "${name}"`);
  }
  return { labels, rest: text.slice(i + 1) };
}

function sampleFamily(name: string, families: ReadonlyMap<string, Family>): Family | undefined {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix)) {
      const f = families.get(name.slice(0, -suffix.length));
      if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return f;
    }
  }
  return families.get(name);
}

/** Every family of `text`, in order; throws ExpositionError naming the first violation. */
export function parseExposition(text: string): Family[] {
  if (!text.endsWith('\n')) throw new ExpositionError(0, 'the text does not end with a newline');
  const families = new Map<string, Family>();
  const helps = new Map<string, string>();
  const seen = new Set<string>();
  let current: Family | null = null;
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((raw, index) => {
    const n = index + 1;
    if (raw.length === 0) throw new ExpositionError(n, 'empty line');
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(raw);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      if (!METRIC_NAME.test(name)) throw new ExpositionError(n, `invalid metric name "${name}"`);
      if (kind === 'HELP') {
        if (helps.has(name)) throw new ExpositionError(n, `second HELP for ${name}`);
        if (/\\([^n]|$)/.test(rest.replace(/\\\\/g, ''))) throw new ExpositionError(n, `invalid escape in HELP of ${name}`);
        if (rest.length === 0) throw new ExpositionError(n, `empty HELP for ${name}`);
        helps.set(name, rest);
        return;
      }
      if (!TYPES.has(rest)) throw new ExpositionError(n, `unknown type "${rest}" for ${name}`);
      if (families.has(name)) throw new ExpositionError(n, `second TYPE for ${name}`);
      const help = helps.get(name);
      if (help === undefined) throw new ExpositionError(n, `${name} has no HELP before its TYPE`);
      current = { name, type: rest as Family['type'], help, samples: [] };
      families.set(name, current);
      return;
    }
    if (raw.startsWith('#')) return;
    const nameMatch = /^[^{\s]+/.exec(raw);
    const name = nameMatch?.[0] ?? '';
    if (!METRIC_NAME.test(name)) throw new ExpositionError(n, `invalid metric name "${name}"`);
    let rest = raw.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, n));
    const fields = rest.trim().split(/ +/);
    if (!rest.startsWith(' ') || fields.length < 1 || fields.length > 2) throw new ExpositionError(n, 'expected " value [timestamp]" after the name and labels');
    if (fields[1] !== undefined && !/^-?\d+$/.test(fields[1])) throw new ExpositionError(n, `invalid timestamp "${fields[1]}"`);
    const value = parseFloatText(fields[0]!, n);
    const family = sampleFamily(name, families);
    if (!family) throw new ExpositionError(n, `${name} has no TYPE line before it`);
    if (family !== current) throw new ExpositionError(n, `${name} is not next to the rest of ${family.name}`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new ExpositionError(n, `${name} repeats a label set`);
    seen.add(key);
    if (family.type === 'counter' && (!(value >= 0) || !name.endsWith('_total'))) throw new ExpositionError(n, `counter ${name} must end in _total and be >= 0`);
    if (family.type === 'histogram' && name.endsWith('_bucket') !== Object.hasOwn(labels, 'le')) throw new ExpositionError(n, `${name}: le belongs on _bucket samples only`);
    family.samples.push({ name, labels, value });
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return [...families.values()];
}

/** Per label set: buckets with ascending le and non-decreasing counts, the last le="+Inf" equal to _count, and a _sum. */
function checkHistogram(f: Family): void {
  const series = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (s.name.endsWith('_bucket')) entry.buckets.push([parseFloatText(le!, 0), s.value]);
    else if (s.name.endsWith('_sum')) entry.sum = s.value;
    else entry.count = s.value;
  }
  for (const [key, s] of series) {
    const where = `${f.name}${key}`;
    if (s.count === undefined || s.sum === undefined) throw new ExpositionError(0, `${where} lacks _sum or _count`);
    for (let i = 1; i < s.buckets.length; i++) {
      if (!(s.buckets[i]![0] > s.buckets[i - 1]![0])) throw new ExpositionError(0, `${where}: le values are not ascending`);
      if (s.buckets[i]![1] < s.buckets[i - 1]![1]) throw new ExpositionError(0, `${where}: bucket counts decrease`);
    }
    const last = s.buckets.at(-1);
    if (!last || last[0] !== Infinity) throw new ExpositionError(0, `${where}: the last bucket is not le="+Inf"`);
    if (last[1] !== s.count) throw new ExpositionError(0, `${where}: the +Inf bucket (${last[1]}) differs from _count (${s.count})`);
  }
}

/** The value of the sample `name` whose labels include `labels`; throws when none or several match. */
export function sampleValue(families: readonly Family[], name: string, labels: Readonly<Record<string, string>> = {}): number {
  const matches = families.flatMap((f) => f.samples).filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (matches.length !== 1) throw new Error(`${matches.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return matches[0]!.value;
}
