import { promptAndReference, type NormalizedExample } from '../data/index.js';
import { generate } from '../generate/index.js';
import type { CausalLM } from '../models/causal-lm.js';
import type { PreTrainedTokenizer } from '../tokenizer/index.js';

export interface GeneratedAnswer {
  prompt: string;
  reference: string;
  output: string;
  correct: boolean;
}

export interface ExactMatchResult {
  /** Share of examples whose greedy answer equals the reference (both trimmed), in [0, 1]. */
  accuracy: number;
  answers: GeneratedAnswer[];
}

/**
 * Greedy generation on held-out prompts, scored by exact match with the reference completion. Examples without
 * a prompt (plain text) are not scored. `model` must have its adapters active and dropout off.
 */
export async function exactMatch(
  model: CausalLM,
  tok: PreTrainedTokenizer,
  records: readonly NormalizedExample[],
  options: { maxNewTokens?: number; batchSize?: number } = {},
): Promise<ExactMatchResult> {
  const items = records.map((r) => promptAndReference(r, tok)).filter((x) => x !== null);
  const answers: GeneratedAnswer[] = [];
  const batchSize = options.batchSize ?? 16;
  for (let i = 0; i < items.length; i += batchSize) {
    const chunk = items.slice(i, i + batchSize);
    const maxNewTokens = options.maxNewTokens ?? Math.max(...chunk.map((c) => tok.encode(c.reference, { addSpecialTokens: false }).length)) + 2;
    const sequences = await generate(
      model,
      chunk.map((c) => c.promptIds),
      { maxNewTokens, doSample: false, eosTokenId: tok.eosTokenIds.length ? tok.eosTokenIds : null },
    );
    chunk.forEach((c, k) => {
      const output = tok.decode(sequences[k]!.slice(c.promptIds.length), { skipSpecialTokens: true });
      answers.push({ prompt: tok.decode(c.promptIds, { skipSpecialTokens: true }), reference: c.reference, output, correct: output.trim() === c.reference.trim() });
    });
  }
  return { accuracy: answers.length ? answers.filter((a) => a.correct).length / answers.length : 0, answers };
}
