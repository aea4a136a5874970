import { join } from 'node:path';
import { writeAll, writeFileAtomically } from '../io/atomic-write.js';
import { lossChartSvg } from './loss-chart.js';
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
  /** Named scores before and after training, e.g. held-out exact match. */
  scores?: readonly { name: string; before: number; after: number }[];
  samples?: readonly ReportSample[];
}

const escape = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** Writes `<dir>/report.html`: one self-contained page (inline SVG, no scripts) that a browser opens offline. */
export async function writeReport(dir: string, r: ReportInput): Promise<string> {
  const chart = await lossChartSvg(r.logHistory);
  const rows = Object.entries(r.config)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `<tr><th>${escape(k)}</th><td>${escape(typeof v === 'string' ? v : JSON.stringify(v))}</td></tr>`)
    .join('');
  const scores = (r.scores ?? []).map((s) => `<tr><th>${escape(s.name)}</th><td>${fmt(s.before)}</td><td>${fmt(s.after)}</td></tr>`).join('');
  const samples = (r.samples ?? [])
    .map((s) => `<tr><td><pre>${escape(s.prompt)}</pre></td><td><pre>${escape(s.reference)}</pre></td><td><pre>${escape(s.before)}</pre></td><td><pre>${escape(s.after)}</pre></td></tr>`)
    .join('');
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(r.title)}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}pre{margin:0;white-space:pre-wrap}</style></head>
<body><h1>${escape(r.title)}</h1>
<ul>${r.notes.map((n) => `<li>${escape(n)}</li>`).join('')}</ul>
<h2>Loss</h2>${chart}
${scores ? `<h2>Scores</h2><table><tr><th></th><th>before</th><th>after</th></tr>${scores}</table>` : ''}
${samples ? `<h2>Samples</h2><table><tr><th>prompt</th><th>reference</th><th>before</th><th>after</th></tr>${samples}</table>` : ''}
<h2>Configuration</h2><table>${rows}</table>
</body></html>
`;
  const path = join(dir, 'report.html');
  await writeFileAtomically(path, (h) => writeAll(h, new TextEncoder().encode(html)));
  return path;
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(3);
}
