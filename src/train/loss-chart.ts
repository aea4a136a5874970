import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import type { LogEntry } from './trainer-state.js';

/** The train and eval loss curves of a log_history as a vega-lite line chart, rendered to SVG without a browser. */
export async function lossChartSvg(history: readonly LogEntry[]): Promise<string> {
  const values: { step: number; loss: number; split: string }[] = [];
  for (const e of history) {
    if (typeof e['step'] !== 'number') continue;
    if (typeof e['loss'] === 'number') values.push({ step: e['step'], loss: e['loss'], split: 'train' });
    if (typeof e['eval_loss'] === 'number') values.push({ step: e['step'], loss: e['eval_loss'], split: 'eval' });
  }
  const spec: vegaLite.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    width: 640,
    height: 280,
    title: 'Loss',
    data: { values },
    mark: { type: 'line', point: { size: 12 } },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'optimizer step' },
      y: { field: 'loss', type: 'quantitative', title: 'cross-entropy (nats/token)', scale: { zero: false } },
      color: { field: 'split', type: 'nominal', title: null, scale: { domain: ['train', 'eval'] } },
    },
  };
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
