import { lineChartSvg, type ChartSeries } from './svg-chart.js';
import type { LogEntry } from './trainer-state.js';

/** [step, value] pairs of one log_history key, from the entries that have both. */
function curve(history: readonly LogEntry[], key: string): [number, number][] {
  const out: [number, number][] = [];
  for (const e of history) {
    const step = e['step'];
    const v = e[key];
    if (typeof step === 'number' && typeof v === 'number') out.push([step, v]);
  }
  return out;
}

/** The train and eval loss curves of a log_history as an SVG line chart over optimizer steps, log-scale y. */
export async function lossChartSvg(history: readonly LogEntry[]): Promise<string> {
  const series: ChartSeries[] = [
    { name: 'train loss', points: curve(history, 'loss'), color: '#4c78a8' },
    { name: 'eval loss', points: curve(history, 'eval_loss'), color: '#f58518' },
  ];
  return lineChartSvg(series.filter((s) => s.points.length > 0), { id: 'loss', title: 'Loss', xLabel: 'optimizer step', yLabel: 'cross-entropy (nats/token)', logY: true });
}

/** Eval keys that time the evaluation rather than measure the model. */
const EVAL_TIMINGS = new Set(['eval_runtime', 'eval_samples_per_second', 'eval_steps_per_second']);

/** Small charts over optimizer steps: learning rate, gradient norm, then each eval metric of the log_history (eval_loss first). */
export function metricChartsSvg(history: readonly LogEntry[]): string[] {
  const evalKeys = [...new Set(history.flatMap((e) => Object.keys(e)))].filter((k) => k.startsWith('eval_') && !EVAL_TIMINGS.has(k));
  evalKeys.sort((a, b) => (a === 'eval_loss' ? -1 : b === 'eval_loss' ? 1 : a < b ? -1 : a > b ? 1 : 0));
  const charts: { id: string; title: string; key: string; color: string }[] = [
    { id: 'learning_rate', title: 'Learning rate', key: 'learning_rate', color: '#54a24b' },
    { id: 'grad_norm', title: 'Gradient norm', key: 'grad_norm', color: '#e45756' },
    ...evalKeys.map((k) => ({ id: k, title: k, key: k, color: '#f58518' })),
  ];
  const size = { width: 320, height: 200, xLabel: 'optimizer step' };
  return charts
    .map((c) => ({ c, points: curve(history, c.key) }))
    .filter(({ points }) => points.length > 0)
    .map(({ c, points }) => lineChartSvg([{ name: c.title, points, color: c.color }], { ...size, id: c.id, title: c.title }));
}
