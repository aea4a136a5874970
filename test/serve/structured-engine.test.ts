import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { integerRangeGrammar } from '../../src/serve/grammar/integer-range.js';
import { lengthPattern, unsafePiece } from '../../src/serve/grammar/string-pattern.js';
import { applyTokenMask } from '../../src/serve/grammar/token-mask.js';
import { grammarVocabulary } from '../../src/serve/grammar/vocabulary.js';
import { PreTrainedTokenizer, readTokenizerFiles } from '../../src/tokenizer/index.js';
import { MODEL_DIR } from './harness.js';

describe('structured output: vocabulary, patterns and masks', () => {
  it('spells the vocabulary as xgrammar reads it: tokens as stored, special tokens and ids past the tokenizer empty', async () => {
    const tokenizer = new PreTrainedTokenizer(await readTokenizerFiles(MODEL_DIR));
    const v = grammarVocabulary(tokenizer, 390);
    assert.deepEqual([v.type, v.prependSpace, v.tokens.length], ['byte_level', false, 390]);
    assert.deepEqual([v.tokens[0], v.tokens[2], v.tokens[4], v.tokens[223], v.tokens[383], v.tokens[389]], ['', '', '"', '\u0120', 'errors', '']);
  });

  it('respells a non-special added token, stored as text, into the byte-level alphabet', async () => {
    const files = await readTokenizerFiles(MODEL_DIR);
    const added = [...(files.tokenizerJson['added_tokens'] as object[]), { id: 384, content: 'hi there\n', special: false, single_word: false, lstrip: false, rstrip: false, normalized: false }];
    const tokenizer = new PreTrainedTokenizer({ ...files, tokenizerJson: { ...files.tokenizerJson, added_tokens: added } });
    assert.equal(grammarVocabulary(tokenizer, 385).tokens[384], 'hi\u0120there\u010a');
  });

  it('finds the piece of a pattern that could write a quote, a backslash, a control or a non-ASCII character', () => {
    const cases: [string, string | null][] = [
      ['^[a-z]{2,4}-\\d{3}$', null],
      ['^(yes|no)[0-9]?$', null],
      ['^[^"\\\\\\x00-\\x1f]+$', '[^"\\\\\\x00-\\x1f]'],
      ['^.+$', '.'],
      ['^\\S+$', '\\S'],
      ['^a"b$', '"'],
      ['^[\\w ]+$', null],
      ['^caf\u00e9$', '\u00e9'],
    ];
    for (const [pattern, piece] of cases) assert.equal(unsafePiece(pattern), piece, pattern);
  });

  it('writes minLength / maxLength as a printable-ASCII pattern without quotes or backslashes', () => {
    const re = new RegExp(lengthPattern(2, 4));
    assert.deepEqual(['ab', 'a b!', 'a', 'abcde', 'a"', 'a\\', 'a\n', 'é1'].map((s) => re.test(s)), [true, true, false, false, false, false, false, false]);
    assert.equal(lengthPattern(0, undefined), '^[ !#-\\[\\]-~]{0,}$');
  });

  it('writes an integer range as a grammar of exactly its decimals, for every range within -1100..1100 tried', () => {
    // The grammar's pieces ("5", [1-3], [0-9]{2}, "-") read as a regular expression once quotes and spaces go.
    const asRegex = (lo: number, hi: number) => new RegExp(`^(?:${integerRangeGrammar(BigInt(lo), BigInt(hi)).replace(/"/g, '').replace(/ /g, '')})$`);
    const ends = [-1100, -1000, -999, -120, -100, -99, -10, -9, -1, 0, 1, 5, 9, 10, 19, 20, 99, 100, 101, 120, 199, 999, 1000, 1100];
    for (const lo of ends) {
      for (const hi of ends.filter((h) => h >= lo)) {
        const re = asRegex(lo, hi);
        for (let n = -1200; n <= 1200; n++) assert.equal(re.test(String(n)), n >= lo && n <= hi, `${n} in [${lo}, ${hi}]: ${re.source}`);
        assert.equal(re.test('-0'), false);
        assert.equal(re.test('05'), false);
      }
    }
    assert.equal(integerRangeGrammar(5n, 120n), '[5-9] | [1-9] [0-9]{1} | "1" [0-1] [0-9]{1} | "1" "2" "0"');
  });

  it('sets every score the mask does not allow to -Infinity and leaves the others', () => {
    const scores = Float32Array.from({ length: 70 }, (_, i) => i);
    const mask = new Int32Array([0b101, -1, 0]);
    applyTokenMask(scores, mask);
    const kept = [...scores.keys()].filter((i) => scores[i]! > -Infinity);
    assert.deepEqual(kept, [0, 2, ...Array.from({ length: 32 }, (_, i) => 32 + i)]);
    assert.deepEqual([scores[0], scores[2], scores[40]], [0, 2, 40]);
  });
});
