import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { OutputText } from '../../src/serve/output-text.js';
import type { PreTrainedTokenizer } from '../../src/tokenizer/index.js';
import { fixtureTokenizer } from './harness.js';

/** Feeds ids one by one; returns the chunks released and the final text. */
function run(text: OutputText, ids: readonly number[]): { chunks: string[]; text: string } {
  const chunks: string[] = [];
  for (const id of ids) {
    const d = text.push(id);
    if (d) chunks.push(d);
    if (text.stopped) break;
  }
  const tail = text.finish();
  if (tail) chunks.push(tail);
  return { chunks, text: text.text };
}

describe('OutputText: incremental detokenization and stop strings', () => {
  let tok: PreTrainedTokenizer;
  const decode = (ids: readonly number[]) => tok.decode(ids, { skipSpecialTokens: true });
  before(async () => {
    tok = await fixtureTokenizer();
  });

  it('releases chunks that add up to decoding all ids at once, multi-byte characters included', () => {
    const ids = tok.encode('naïve café — 日本語 ok 🙂 done', { addSpecialTokens: false });
    const { chunks, text } = run(new OutputText(decode, []), ids);
    assert.equal(text, decode(ids));
    assert.equal(chunks.join(''), text);
    assert.ok(chunks.every((c) => !c.includes('\uFFFD')));
  });

  it('cuts at the earliest stop string and never releases any part of it', () => {
    const ids = tok.encode('alpha beta gamma delta', { addSpecialTokens: false });
    const out = new OutputText(decode, ['delta', 'ta g']);
    const { chunks, text } = run(out, ids);
    assert.equal(text, 'alpha be');
    assert.equal(chunks.join(''), 'alpha be');
    assert.ok(out.stopped);
  });

  it('holds back a possible stop-string prefix and releases it when the stop string does not follow', () => {
    const ids = tok.encode('abcabd', { addSpecialTokens: false });
    const { chunks, text } = run(new OutputText(decode, ['abc!']), ids);
    assert.equal(text, 'abcabd');
    assert.equal(chunks.join(''), 'abcabd');
    assert.equal(new OutputText(decode, ['abc!']).stopped, false);
  });

  it('finds a stop string that completes in the text held back until the end', () => {
    const ids = tok.encode('xyz END', { addSpecialTokens: false });
    const out = new OutputText(decode, [' END']);
    assert.equal(run(out, ids).text, 'xyz');
    assert.ok(out.stopped);
  });

  it('with keepStop ends the text with the earliest stop string instead of cutting it', () => {
    const ids = tok.encode('alpha beta gamma delta', { addSpecialTokens: false });
    const out = new OutputText(decode, ['delta', 'ta g'], true);
    const { chunks, text } = run(out, ids);
    assert.equal(text, 'alpha beta g');
    assert.equal(chunks.join(''), 'alpha beta g');
    assert.ok(out.stopped);
  });
});
