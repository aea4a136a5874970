import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Histogram } from '../../src/serve/prometheus.js';
import { parseExposition, sampleValue } from './metrics-exposition.js';

const text = (...lines: string[]) => `${lines.join('\n')}\n`;
const HISTOGRAM = ['# HELP h_seconds Latency.', '# TYPE h_seconds histogram'];

describe('the strict exposition reader', () => {
  it('reads what Counter and Histogram write, label escapes undone', () => {
    const c = new Counter('c_total', 'Counts "things" \\ lines\nacross.');
    c.inc({ path: 'a"b\\c\nd' }, 2);
    c.inc({ path: 'a"b\\c\nd' });
    const h = new Histogram('h_seconds', 'Latency.', [0.1, 1]);
    for (const v of [0.05, 0.5, 0.7, 3]) h.observe({ model_name: 'm' }, v);
    const families = parseExposition(text(...c.lines(), ...h.lines()));
    assert.equal(families[0]!.help, 'Counts "things" \\\\ lines\\nacross.');
    assert.equal(sampleValue(families, 'c_total', { path: 'a"b\\c\nd' }), 3);
    assert.deepEqual(
      families[1]!.samples.map((s) => [s.name, s.labels['le'] ?? null, s.value]),
      [['h_seconds_bucket', '0.1', 1], ['h_seconds_bucket', '1', 3], ['h_seconds_bucket', '+Inf', 4], ['h_seconds_sum', null, 4.25], ['h_seconds_count', null, 4]],
    );
  });

  const refusals: [string, string, RegExp][] = [
    ['a sample without TYPE', text('x 1'), /^line 1: x has no TYPE line before it$/],
    ['TYPE without HELP', text('# TYPE x gauge', 'x 1'), /^line 1: x has no HELP before its TYPE$/],
    ['a counter not ending in _total', text('# HELP c C.', '# TYPE c counter', 'c 1'), /^line 3: counter c must end in _total and be >= 0$/],
    ['an invalid label escape', text('# HELP g G.', '# TYPE g gauge', 'g{a="\\t"} 1'), /^line 3: invalid escape "\\t" in label "a"$/],
    ['a repeated label set', text('# HELP g G.', '# TYPE g gauge', 'g{a="1"} 1', 'g{a="1"} 2'), /^line 4: g repeats a label set$/],
    ['a family split by another', text('# HELP g G.', '# TYPE g gauge', '# HELP k K.', '# TYPE k gauge', 'g 1'), /^line 5: g is not next to the rest of g$/],
    ['an invalid metric name', text('# HELP 1g G.'), /^line 1: invalid metric name "1g"$/],
    ['a missing final newline', '# HELP g G.', /^line 0: the text does not end with a newline$/],
    ['decreasing buckets', text(...HISTOGRAM, 'h_seconds_bucket{le="1"} 2', 'h_seconds_bucket{le="+Inf"} 1', 'h_seconds_sum 1', 'h_seconds_count 1'), /bucket counts decrease$/],
    ['+Inf differing from _count', text(...HISTOGRAM, 'h_seconds_bucket{le="+Inf"} 2', 'h_seconds_sum 1', 'h_seconds_count 3'), /the \+Inf bucket \(2\) differs from _count \(3\)$/],
    ['buckets not ending in +Inf', text(...HISTOGRAM, 'h_seconds_bucket{le="1"} 1', 'h_seconds_sum 1', 'h_seconds_count 1'), /the last bucket is not le="\+Inf"$/],
  ];
  for (const [what, input, message] of refusals) {
    it(`refuses ${what}`, () => {
      assert.throws(() => parseExposition(input), { message });
    });
  }
});
