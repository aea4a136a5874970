/** A small dependency-free SVG line chart: numeric x, linear or log-scale y, one path per series, axis ticks and a legend. */

export interface ChartSeries {
  name: string;
  /** [x, y] pairs; points that are not finite (or not positive on a log axis) are left out. */
  points: readonly (readonly [number, number])[];
  color?: string;
}

export interface ChartOptions {
  title: string;
  xLabel?: string;
  yLabel?: string;
  /** Log-scale y axis (base 10). */
  logY?: boolean;
  width?: number;
  height?: number;
  /** Written as the root element's data-chart attribute, for tests and styling. */
  id?: string;
}

export interface Tick {
  value: number;
  label: string;
}

const PALETTE = ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#b279a2'];

const escape = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** A short label for a tick value: at most 3 significant digits, exponent notation for very small or large magnitudes. */
export function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e5) {
    const [m, e] = v.toExponential(2).split('e');
    return `${String(Number(m))}e${Number(e)}`;
  }
  return String(Number(v.toPrecision(3)));
}

/** About `count` evenly spaced ticks at 1, 2 or 5 times a power of ten covering [lo, hi]; the domain is widened to the outer ticks. */
export function linearTicks(lo: number, hi: number, count = 5): { domain: [number, number]; ticks: Tick[] } {
  if (!(hi > lo)) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw * (1 - 1e-9))!;
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const ticks: Tick[] = [];
  for (let i = first; i <= last; i++) {
    const value = Number((i * step).toPrecision(12));
    ticks.push({ value, label: formatTick(value) });
  }
  return { domain: [first * step, last * step], ticks };
}

/**
 * Ticks for a base-10 log axis over [lo, hi] (both > 0). The domain is padded by 5% of the range in log space.
 * Across several decades the ticks are the powers of ten (every other one past 6 decades); within fewer
 * decades 2 and 5 times them are added, and within one decade every integer multiple, so an axis has at least
 * two labelled ticks.
 */
export function logTicks(lo: number, hi: number): { domain: [number, number]; ticks: Tick[] } {
  if (!(lo > 0) || !(hi > 0)) throw new Error(`logTicks: the range [${lo}, ${hi}] is not positive.`);
  if (hi < lo) [lo, hi] = [hi, lo];
  const span = hi > lo ? Math.log10(hi / lo) : 0.3;
  const pad = span * 0.05;
  const domain: [number, number] = [10 ** (Math.log10(lo) - (hi > lo ? pad : span / 2)), 10 ** (Math.log10(hi) + (hi > lo ? pad : span / 2))];
  const inDomain = (v: number) => v >= domain[0] * (1 - 1e-9) && v <= domain[1] * (1 + 1e-9);
  const candidates = (mantissas: readonly number[], decadeStep = 1): number[] => {
    const out: number[] = [];
    for (let e = Math.floor(Math.log10(domain[0])); e <= Math.ceil(Math.log10(domain[1])); e += decadeStep) {
      for (const m of mantissas) {
        const v = Number((m * 10 ** e).toPrecision(12));
        if (inDomain(v)) out.push(v);
      }
    }
    return out;
  };
  const decades = Math.log10(domain[1] / domain[0]);
  let values = decades > 6 ? candidates([1], 2) : candidates([1]);
  if (values.length < 3) values = candidates([1, 2, 5]);
  if (values.length < 3) values = candidates([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  if (values.length < 2) {
    // Narrower than one step of the 1..9 grid: label the ends.
    values = [lo, hi > lo ? hi : lo];
    return { domain, ticks: [...new Set(values)].map((value) => ({ value, label: formatTick(Number(value.toPrecision(3))) })) };
  }
  return { domain, ticks: values.map((value) => ({ value, label: formatTick(value) })) };
}

/** A line chart as a standalone <svg> element (no scripts, no external resources). */
export function lineChartSvg(series: readonly ChartSeries[], o: ChartOptions): string {
  const width = o.width ?? 640;
  const height = o.height ?? 280;
  const m = { left: 64, right: 16, top: 30, bottom: 40 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const clean = series.map((s, i) => ({
    name: s.name,
    color: s.color ?? PALETTE[i % PALETTE.length]!,
    points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logY || y > 0)).slice().sort((a, b) => a[0] - b[0]),
  }));
  const all = clean.flatMap((s) => s.points);
  const head = `<svg xmlns="http://www.w3.org/2000/svg" class="chart"${o.id ? ` data-chart="${escape(o.id)}"` : ''} width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui,sans-serif" font-size="11">`
    + `<title>${escape(o.title)}</title><text x="${m.left}" y="18" font-size="13" font-weight="600">${escape(o.title)}</text>`;
  if (all.length === 0) {
    return `${head}<text class="empty" x="${width / 2}" y="${height / 2}" text-anchor="middle" fill="#888">no data</text></svg>`;
  }
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs);
  // x spans the data (from 0 when the data starts near it), with the ticks that fall inside.
  const xLo = xMin >= 0 && xMin <= 0.1 * xMax ? 0 : xMin;
  const xHi = xMax === xLo ? xLo + 1 : xMax;
  const xNice = linearTicks(xLo, xHi, Math.max(2, Math.floor(pw / 70)));
  const xAxis = { domain: [xLo, xHi] as const, ticks: xNice.ticks.filter((t) => t.value >= xLo - 1e-9 * (xHi - xLo) && t.value <= xHi + 1e-9 * (xHi - xLo)) };
  const yAxis = o.logY ? logTicks(Math.min(...ys), Math.max(...ys)) : linearTicks(Math.min(...ys), Math.max(...ys), Math.max(2, Math.floor(ph / 50)));
  // Integer x (steps): keep whole-number ticks only.
  const xTicks = xs.every(Number.isInteger) ? xAxis.ticks.filter((t) => Number.isInteger(t.value)) : xAxis.ticks;
  const sx = (x: number) => m.left + ((x - xAxis.domain[0]) / (xAxis.domain[1] - xAxis.domain[0])) * pw;
  const [y0, y1] = yAxis.domain;
  const sy = o.logY
    ? (y: number) => m.top + ph - ((Math.log10(y) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0))) * ph
    : (y: number) => m.top + ph - ((y - y0) / (y1 - y0)) * ph;
  const r = (v: number) => v.toFixed(1);
  const parts: string[] = [head];
  parts.push(`<g class="axis y-axis${o.logY ? ' log' : ''}">`);
  for (const t of yAxis.ticks) {
    const y = r(sy(t.value));
    parts.push(`<g class="tick" data-value="${t.value}"><line x1="${m.left}" x2="${m.left + pw}" y1="${y}" y2="${y}" stroke="#e5e5e5"/><text x="${m.left - 6}" y="${y}" dy="0.32em" text-anchor="end" fill="#444">${escape(t.label)}</text></g>`);
  }
  parts.push('</g><g class="axis x-axis">');
  for (const t of xTicks) {
    const x = r(sx(t.value));
    parts.push(`<g class="tick" data-value="${t.value}"><line x1="${x}" x2="${x}" y1="${m.top + ph}" y2="${m.top + ph + 4}" stroke="#888"/><text x="${x}" y="${m.top + ph + 16}" text-anchor="middle" fill="#444">${escape(t.label)}</text></g>`);
  }
  parts.push('</g>');
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  if (o.xLabel) parts.push(`<text x="${m.left + pw / 2}" y="${height - 6}" text-anchor="middle" fill="#222">${escape(o.xLabel)}</text>`);
  if (o.yLabel) parts.push(`<text transform="translate(14 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#222">${escape(o.yLabel)}${o.logY ? ' (log scale)' : ''}</text>`);
  for (const s of clean) {
    if (s.points.length === 0) continue;
    const d = s.points.map(([x, y], i) => `${i ? 'L' : 'M'}${r(sx(x))} ${r(sy(y))}`).join('');
    const dots = s.points.length <= 60 ? s.points.map(([x, y]) => `<circle cx="${r(sx(x))}" cy="${r(sy(y))}" r="2.2" fill="${s.color}"><title>${escape(s.name)} @ ${x}: ${formatTick(y)}</title></circle>`).join('') : '';
    parts.push(`<g class="series" data-series="${escape(s.name)}" data-points="${s.points.length}"><path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.6"/>${dots}</g>`);
  }
  if (clean.length > 1) {
    parts.push('<g class="legend">');
    let x = m.left + pw;
    for (const s of [...clean].reverse()) {
      const w = 22 + s.name.length * 6.5;
      x -= w;
      parts.push(`<g><line x1="${r(x)}" x2="${r(x + 14)}" y1="14" y2="14" stroke="${s.color}" stroke-width="2"/><text x="${r(x + 18)}" y="14" dy="0.32em" fill="#222">${escape(s.name)}</text></g>`);
    }
    parts.push('</g>');
  }
  parts.push('</svg>');
  return parts.join('');
}
