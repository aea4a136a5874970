import { join } from 'node:path';
import { writeAll, writeFileAtomically } from '../io/atomic-write.js';
import { writingTo } from './write-errors.js';
import { lossChartSvg, metricChartsSvg } from './loss-chart.js';
import type { LogEntry } from './trainer-state.js';

/** One prompt with the model's answers before and after training. */
export interface ReportSample {
  prompt: string;
  reference: string;
  before: string;
  after: string;
}

export interface ReportInput {
  title: string;
  /** Settings shown as a table (training arguments, model, adapter, data). */
  config: Record<string, unknown>;
  /** Facts about the run (data summary, runtime, memory), one line each. */
  notes: readonly string[];
  logHistory: readonly LogEntry[];
  /**
   * Epochs the run went through (trainer_state's fractional `epoch`), which is what the report states: the
   * configured `epochs` does not say it when max_steps, early stopping or a resume decided the length.
   * Default: the last `epoch` in logHistory.
   */
  epochs?: number;
  /** Named scores before and after training, e.g. held-out exact match. */
  scores?: readonly { name: string; before: number; after: number }[];
  samples?: readonly ReportSample[];
}

const escape = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** Writes `<dir>/report.html`: one self-contained page (inline SVG, no scripts) that a browser opens offline. */
export async function writeReport(dir: string, r: ReportInput): Promise<string> {
  const chart = await lossChartSvg(r.logHistory);
  const small = metricChartsSvg(r.logHistory);
  const epochs = r.epochs ?? epochsOf(r.logHistory);
  const epochNote = epochs === null ? [] : [`${fmtEpochs(epochs)} epoch${epochs === 1 ? '' : 's'} trained`];
  const rows = Object.entries(r.config)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => {
      let value = typeof v === 'string' ? v : JSON.stringify(v);
      // The configured epoch count next to the one the run did, so the table never states a count the run did not train.
      if (k === 'epochs' && epochs !== null && typeof v === 'number' && Math.abs(v - epochs) > 1e-9) value = `${fmtEpochs(epochs)} trained (configured ${value})`;
      return `<tr><th>${escape(k)}</th><td>${escape(value)}</td></tr>`;
    })
    .join('');
  const scores = (r.scores ?? []).map((s) => `<tr><th>${escape(s.name)}</th><td>${fmt(s.before)}</td><td>${fmt(s.after)}</td></tr>`).join('');
  const samples = (r.samples ?? [])
    .map((s) => `<tr><td><pre>${escape(s.prompt)}</pre></td><td><pre>${escape(s.reference)}</pre></td><td><pre>${escape(s.before)}</pre></td><td><pre>${escape(s.after)}</pre></td></tr>`)
    .join('');
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(r.title)}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}pre{margin:0;white-space:pre-wrap}
.charts{display:flex;flex-wrap:wrap;gap:8px}</style></head>
<body><h1>${escape(r.title)}</h1>
<ul>${[...epochNote, ...r.notes].map((n) => `<li>${escape(n)}</li>`).join('')}</ul>
<h2>Loss</h2>${chart}
${small.length ? `<h2>Training curves</h2><div class="charts">${small.join('')}</div>` : ''}
${scores ? `<h2>Scores</h2><table><tr><th></th><th>before</th><th>after</th></tr>${scores}</table>` : ''}
${samples ? `<h2>Samples</h2><table><tr><th>prompt</th><th>reference</th><th>before</th><th>after</th></tr>${samples}</table>` : ''}
<h2>Configuration</h2><table>${rows}</table>
</body></html>
`;
  const path = join(dir, 'report.html');
  await writingTo(path, () => writeFileAtomically(path, (h) => writeAll(h, new TextEncoder().encode(html))));
  return path;
}

/** The last `epoch` that log_history records, or null when it records none. */
function epochsOf(history: readonly LogEntry[]): number | null {
  for (let i = history.length - 1; i >= 0; i--) {
    const e = history[i]!['epoch'];
    if (typeof e === 'number' && Number.isFinite(e)) return e;
  }
  return null;
}

/** Whole epochs as an integer, fractional ones to two decimals. */
function fmtEpochs(x: number): string {
  return Math.abs(x - Math.round(x)) < 1e-9 ? String(Math.round(x)) : x.toFixed(2);
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(3);
}
