import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { lossChartSvg, metricChartsSvg } from '../../src/train/loss-chart.js';
import { writeReport } from '../../src/train/report.js';
import { formatTick, lineChartSvg, linearTicks, logTicks } from '../../src/train/svg-chart.js';
import type { LogEntry } from '../../src/train/trainer-state.js';

/** A minimal XML well-formedness check: every element closed in order, attributes quoted, no stray '<' or '&'. */
function assertWellFormed(xml: string, what: string): void {
  const stack: string[] = [];
  const re = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<!doctype[^>]*>|&(?:amp|lt|gt|quot|#\d+);|[<&]/gi;
  for (const m of xml.matchAll(re)) {
    const [all, close, name, , selfClose] = m;
    if (all === '<' || all === '&') assert.fail(`${what}: stray "${all}" at ${m.index}: ${xml.slice(m.index!, m.index! + 60)}`);
    if (!name) continue;
    const lower = name.toLowerCase();
    if (['meta', 'br', 'hr', 'img', 'link', 'input'].includes(lower)) continue;
    if (close) assert.equal(stack.pop(), name, `${what}: </${name}> at ${m.index} closes another element`);
    else if (!selfClose) stack.push(name);
  }
  assert.deepEqual(stack, [], `${what}: unclosed elements`);
}

/** The elements matching a tag and an attribute value, by their opening tags. */
const seriesNames = (svg: string): string[] => [...svg.matchAll(/<g class="series" data-series="([^"]+)"/g)].map((m) => m[1]!);
const tickValues = (svg: string, axis: 'x' | 'y'): number[] => {
  const block = svg.match(new RegExp(`<g class="axis ${axis}-axis[^"]*">(.*?)</g></g>|<g class="axis ${axis}-axis[^"]*">(.*?)</g><`))!;
  return [...(block[1] ?? block[2] ?? '').matchAll(/data-value="([^"]+)"/g)].map((m) => Number(m[1]));
};

/** A 6-epoch run (4 steps per epoch) whose configured epochs were 3: train loss every step, eval every 4 steps. */
function history(): LogEntry[] {
  const h: LogEntry[] = [];
  for (let step = 1; step <= 24; step++) {
    h.push({ loss: 2.5 * Math.exp(-step / 6), grad_norm: 1 / step, learning_rate: 1e-4 * (1 - step / 24), epoch: step / 4, step });
    if (step % 4 === 0) h.push({ eval_loss: 2.6 * Math.exp(-step / 7), eval_runtime: 0.5, epoch: step / 4, step });
  }
  h.push({ train_loss: 0.6, train_runtime: 10, epoch: 6, step: 24 });
  return h;
}

test('log axis ticks: powers of ten across decades, 1-2-5 within a few, finer within one', () => {
  const wide = logTicks(1e-3, 10);
  assert.deepEqual(wide.ticks.map((t) => t.value), [1e-3, 1e-2, 0.1, 1, 10]);
  assert.deepEqual(wide.ticks.map((t) => t.label), ['0.001', '0.01', '0.1', '1', '10']);
  const loss = logTicks(0.05, 2.5);
  assert.deepEqual(loss.ticks.map((t) => t.value), [0.05, 0.1, 0.2, 0.5, 1, 2]);
  const narrow = logTicks(0.8, 2.4);
  assert.deepEqual(narrow.ticks.map((t) => t.value), [0.8, 0.9, 1, 2]);
  for (const r of [wide, loss, narrow]) for (const t of r.ticks) assert.ok(t.value >= r.domain[0] && t.value <= r.domain[1]);
  assert.equal(logTicks(1.01, 1.02).ticks.length, 2);
  assert.throws(() => logTicks(0, 1), /not positive/);
});

test('linear ticks are 1/2/5 steps covering the range; labels are short', () => {
  assert.deepEqual(linearTicks(1, 24, 5).ticks.map((t) => t.value), [0, 5, 10, 15, 20, 25]);
  assert.deepEqual(linearTicks(0, 1e-4, 5).ticks.map((t) => t.label), ['0', '2e-5', '4e-5', '6e-5', '8e-5', '1e-4']);
  assert.equal(formatTick(0.30000000000000004), '0.3');
  assert.equal(formatTick(123456), '1.23e5');
});

test('the loss chart: train and eval loss series on a log y axis over steps, well-formed SVG', async () => {
  const svg = await lossChartSvg(history());
  assertWellFormed(svg, 'loss chart');
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" class="chart" data-chart="loss"/);
  assert.deepEqual(seriesNames(svg), ['train loss', 'eval loss']);
  assert.match(svg, /data-series="train loss" data-points="24"/);
  assert.match(svg, /data-series="eval loss" data-points="6"/);
  assert.match(svg, /<g class="axis y-axis log">/);
  // Loss from 2.5e^-4 = 0.046 to 2.5: 1-2-5 ticks.
  assert.deepEqual(tickValues(svg, 'y'), [0.05, 0.1, 0.2, 0.5, 1, 2]);
  assert.deepEqual(tickValues(svg, 'x'), [0, 5, 10, 15, 20]);
  assert.match(svg, /\(log scale\)/);
  // Points on a log scale: equal ratios are equal distances.
  const ys = [...svg.matchAll(/<circle cx="[^"]+" cy="([^"]+)"/g)].slice(0, 24).map((m) => Number(m[1]));
  const d = ys.slice(1).map((y, i) => y - ys[i]!);
  for (const x of d) assert.ok(Math.abs(x - d[0]!) < 0.15, `log spacing ${d.join(',')}`);
});

test('small charts: learning rate, gradient norm and eval loss, without eval timings', () => {
  const charts = metricChartsSvg(history());
  assert.deepEqual(charts.map((c) => c.match(/data-chart="([^"]+)"/)![1]), ['learning_rate', 'grad_norm', 'eval_loss']);
  for (const c of charts) assertWellFormed(c, 'small chart');
  assert.match(charts[0]!, /data-series="Learning rate" data-points="24"/);
  assert.deepEqual(metricChartsSvg([]), []);
  assert.match(lineChartSvg([], { title: 'empty' }), /no data/);
});

test('the report states the epochs the run did (6), not the configured 3, and is well-formed HTML with the charts', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'loraforge-report-'));
  try {
    const path = await writeReport(dir, { title: 'run <a & b>', config: { epochs: 3, max_steps: 24 }, notes: ['note'], logHistory: history() });
    const html = await readFile(path, 'utf8');
    assertWellFormed(html, 'report.html');
    assert.match(html, /<li>6 epochs trained<\/li>/);
    assert.match(html, /<th>epochs<\/th><td>6 trained \(configured 3\)<\/td>/);
    assert.doesNotMatch(html, /<td>3<\/td>/);
    assert.equal((html.match(/<svg /g) ?? []).length, 4);
    assert.doesNotMatch(html, /<script/);
    // The run's own count wins over log_history's; fractional epochs to two decimals.
    const path2 = await writeReport(dir, { title: 't', config: { epochs: 3 }, notes: [], logHistory: history(), epochs: 2.5 });
    assert.match(await readFile(path2, 'utf8'), /<li>2\.50 epochs trained<\/li>.*<td>2\.50 trained \(configured 3\)<\/td>/s);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
