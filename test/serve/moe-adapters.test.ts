/**
 * Serving mixture-of-experts models (Mixtral, Qwen3-MoE, gpt-oss) with LoRA on their experts (PEFT's
 * target_parameters) over a real port: each adapter's greedy tokens equal PEFT's, requests for the expert adapter,
 * an attention adapter and the base model decode in one continuous batch and each gets what it gets alone and what
 * the library's generate gives it, and expert adapters load and unload at run time. PEFT 0.21 cannot run expert
 * adapters in a mixed batch, so the mixed rows are checked against the single-adapter references.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type OpenAI from 'openai';
import { generate } from '../../src/generate/index.js';
import { AutoModelForCausalLM } from '../../src/models/auto.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { MoeExperts, SparseMoeBlock } from '../../src/models/moe.js';
import { PeftModel } from '../../src/peft/index.js';
import { loadIn4bit } from '../../src/quant/index.js';
import { AutoTokenizer, type PreTrainedTokenizer } from '../../src/tokenizer/index.js';
import { TEST_DEVICE } from '../helpers/device.js';
import { fixturePath, readFixtureTensor } from '../helpers/fixtures.js';
import { rawRequest, startServer, type TestServer } from './harness.js';

const MOE_MODELS = ['tiny-mixtral', 'tiny-qwen3moe', 'tiny-gptoss'] as const;
/** Served name -> the reference file's variant: the expert adapter (q_proj plus experts) and the attention-only one. */
const ADAPTERS = { experts: 'lora_experts', attention: 'lora' } as const;
type Served = 'base' | keyof typeof ADAPTERS;
const SERVED: readonly Served[] = ['base', 'experts', 'attention'];

async function ids(file: string, key: string): Promise<number[]> {
  return Array.from((await readFixtureTensor(file, key)).data as ArrayLike<number | bigint>, Number);
}

interface Job {
  readonly model: Served;
  readonly prompt: number[];
}

interface Timed {
  readonly text: string;
  /** performance.now() when the first and the last text chunk arrived. */
  readonly first: number;
  readonly last: number;
}

/** Greedy, 16 tokens whatever EOS (vLLM's ignore_eos), so every request of a burst stays in the batch as long. */
function params(model: string, prompt: number[]): OpenAI.CompletionCreateParamsNonStreaming {
  return { model, prompt, max_tokens: 16, temperature: 0, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming;
}

async function streamed(client: OpenAI, model: string, prompt: number[]): Promise<Timed> {
  let text = '';
  let first = 0;
  let last = 0;
  for await (const chunk of await client.completions.create({ ...params(model, prompt), stream: true })) {
    const piece = chunk.choices.map((c) => c.text).join('');
    if (chunk.choices.length === 0) continue;
    last = performance.now();
    if (first === 0) first = last;
    text += piece;
  }
  return { text, first, last };
}

/**
 * Jobs for the base, the expert adapter and the attention adapter on every prompt. The library (PEFT over `base`,
 * adapters stored in its dtype as the server stores them) generates each job alone and all of them as rows of one
 * call, which must agree; the server answers each job alone, then all at once, streamed, and must give each the
 * library's tokens, with the requests overlapping in time (each one's first token before any one's last, so all
 * were rows of the same decode steps). Returns the library's tokens per job, models outer, prompts inner.
 */
async function checkMixedBatch(t: TestServer, name: string, base: CausalLM, prompts: readonly number[][], decode: (tokens: readonly number[]) => string): Promise<number[][]> {
  const jobs: Job[] = SERVED.flatMap((model) => prompts.map((prompt) => ({ model, prompt })));
  const peft = await PeftModel.fromPretrained(base, fixturePath(`${name}-lora_experts`), { adapterName: 'experts', dtype: base.dtype });
  await peft.loadAdapter(fixturePath(`${name}-lora`), 'attention', { dtype: base.dtype });
  const rowName = (m: Served) => (m === 'base' ? '__base__' : m);
  const options = { maxNewTokens: 16, eosTokenId: null };
  const alone: number[][] = [];
  for (const job of jobs) alone.push((await generate(peft.model, [job.prompt], { ...options, adapterNames: [rowName(job.model)] }))[0]!.slice(job.prompt.length));
  const together = await generate(peft.model, jobs.map((j) => j.prompt), { ...options, adapterNames: jobs.map((j) => rowName(j.model)) });
  assert.deepEqual(together.map((row, i) => row.slice(jobs[i]!.prompt.length)), alone, 'library: mixed rows equal each row alone');
  const served = (m: Served) => (m === 'base' ? name : m);
  const client = t.client();
  for (const [i, job] of jobs.entries()) {
    const r = await client.completions.create(params(served(job.model), job.prompt));
    assert.equal(r.choices[0]!.text, decode(alone[i]!), `server alone, job ${i} (${job.model})`);
  }
  const results = await Promise.all(jobs.map((job) => streamed(client, served(job.model), job.prompt)));
  assert.deepEqual(results.map((r) => r.text), alone.map(decode), 'server batch: every request its tokens alone');
  const firsts = Math.max(...results.map((r) => r.first));
  const lasts = Math.min(...results.map((r) => r.last));
  assert.ok(firsts < lasts, `the requests overlapped (last first token at ${firsts.toFixed(1)} ms, first last token at ${lasts.toFixed(1)} ms)`);
  return alone;
}

for (const name of MOE_MODELS) {
  describe(`${name}: expert adapters served over a real port`, () => {
    const ref = `${name}-ref.safetensors`;
    let t: TestServer;
    let tokenizer: PreTrainedTokenizer;
    const served = (m: Served) => (m === 'base' ? name : m);
    const decode = (tokens: readonly number[]) => tokenizer.decode(tokens, { skipSpecialTokens: true });
    /** The first 8 ids of row 0 (the reference prompt), then prompts of other rows and lengths. */
    const prompts: number[][] = [];

    before(async () => {
      t = await startServer({
        modelDir: fixturePath(name),
        adapters: Object.entries(ADAPTERS).map(([n, v]) => ({ name: n, path: fixturePath(`${name}-${v}`) })),
        adapterRoot: fixturePath(),
        maxBatch: 32,
      });
      tokenizer = await AutoTokenizer.fromPretrained(fixturePath(name));
      const input = await ids(ref, 'input_ids');
      for (const [row, length] of [[0, 8], [1, 11], [2, 5]] as const) prompts.push(input.slice(row * 24, row * 24 + length));
    });
    after(() => t.server.close());

    it('lists the base model and both adapters', async () => {
      assert.deepEqual((await t.client().models.list()).data.map((m) => m.id), SERVED.map(served));
    });

    for (const model of SERVED) {
      it(`${model}: a completion alone equals PEFT's greedy tokens`, async () => {
        const expected = await ids(ref, model === 'base' ? 'generate_base' : `${ADAPTERS[model]}.generate`);
        const r = await t.client().completions.create({ model: served(model), prompt: prompts[0]!, max_tokens: 16, temperature: 0 });
        assert.equal(r.choices[0]!.text, decode(expected));
        // gpt-oss's references end at its EOS (id 0) before 16 tokens.
        assert.equal(r.choices[0]!.finish_reason, expected.length < 16 ? 'stop' : 'length');
        assert.equal(r.usage!.completion_tokens, expected.length);
      });
    }

    it('a mixed batch of expert, attention and base rows gives each request its tokens alone and the library\'s generate', async () => {
      const base = await AutoModelForCausalLM.fromPretrained(fixturePath(name), { device: TEST_DEVICE });
      const alone = await checkMixedBatch(t, name, base, prompts, decode);
      // The rows on the reference prompt are PEFT's own greedy tokens (up to its EOS, where PEFT stopped).
      for (const [i, model] of SERVED.entries()) {
        const expected = await ids(ref, model === 'base' ? 'generate_base' : `${ADAPTERS[model]}.generate`);
        assert.deepEqual(alone[i * prompts.length]!.slice(0, expected.length), expected, `${model} alone vs PEFT`);
      }
    });

    it('loads an expert adapter at run time, serves it, unloads it, and refuses one made for another model', async () => {
      const other = name === 'tiny-qwen3moe' ? 'tiny-mixtral' : 'tiny-qwen3moe';
      const bad = await rawRequest(t.baseURL, 'POST', '/adapters', JSON.stringify({ name: 'wrong-base', path: `${other}-lora_experts` }));
      assert.equal(bad.status, 400, JSON.stringify(bad.json));
      assert.equal((bad.json as { error: { code: string; message: string } }).error.code, 'adapter_load_failed');
      assert.doesNotMatch(JSON.stringify(bad.json), /fixtures/, 'no server path reaches the client');
      const add = await rawRequest(t.baseURL, 'POST', '/adapters', JSON.stringify({ name: 'tenant-experts', path: `${name}-lora_experts` }));
      assert.equal(add.status, 201, JSON.stringify(add.json));
      const expected = decode(await ids(ref, 'lora_experts.generate'));
      for (const model of ['tenant-experts', 'experts']) {
        const r = await t.client().completions.create({ model, prompt: prompts[0]!, max_tokens: 16, temperature: 0 });
        assert.equal(r.choices[0]!.text, expected, model);
      }
      assert.equal((await rawRequest(t.baseURL, 'DELETE', '/adapters/tenant-experts')).status, 200);
      await assert.rejects(t.client().completions.create({ model: 'tenant-experts', prompt: prompts[0]!, max_tokens: 2 }), (e: { status?: number }) => e.status === 404);
      // The failed load and the unload left the served adapters as they were.
      for (const model of SERVED) {
        const r = await t.client().completions.create({ model: served(model), prompt: prompts[0]!, max_tokens: 16, temperature: 0 });
        assert.equal(r.choices[0]!.text, decode(await ids(ref, model === 'base' ? 'generate_base' : `${ADAPTERS[model]}.generate`)), model);
      }
    });
  });
}

describe('--qlora: MoE models served with NF4 projections and NF4 experts', () => {
  for (const name of ['tiny-qwen3moe', 'tiny-gptoss']) {
    it(`${name}: expert adapters in a mixed batch over the 4-bit base give the library's QLoRA tokens`, async () => {
      const t = await startServer({
        modelDir: fixturePath(name),
        qlora: true,
        adapters: Object.entries(ADAPTERS).map(([n, v]) => ({ name: n, path: fixturePath(`${name}-${v}`) })),
        maxBatch: 32,
      });
      try {
        const tokenizer = await AutoTokenizer.fromPretrained(fixturePath(name));
        const decode = (tokens: readonly number[]) => tokenizer.decode(tokens, { skipSpecialTokens: true });
        const input = await ids(`${name}-ref.safetensors`, 'input_ids');
        const prompts = [input.slice(0, 8), input.slice(24, 35)];
        // What train --qlora trains on: every expert matrix in NF4, computed in bfloat16.
        const base = await loadIn4bit(fixturePath(name), { device: TEST_DEVICE });
        const experts = [...base.namedModules()].flatMap(([, m]) => (m instanceof SparseMoeBlock && m.experts instanceof MoeExperts ? [m.experts] : []));
        assert.ok(experts.length > 0 && experts.every((e) => e.isQuantized('gate_up_proj') && e.isQuantized('down_proj')));
        assert.equal(base.dtype, 'bfloat16');
        const quantized = await checkMixedBatch(t, name, base, prompts, decode);
        // The 4-bit experts change the tokens: the dense float32 model's differ for some job.
        const dense = await PeftModel.fromPretrained(await AutoModelForCausalLM.fromPretrained(fixturePath(name), { device: TEST_DEVICE }), fixturePath(`${name}-lora_experts`));
        const [denseExperts] = await generate(dense.model, [prompts[0]!], { maxNewTokens: 16, eosTokenId: null });
        assert.notDeepEqual(denseExperts!.slice(8), quantized[prompts.length], 'NF4 experts give other tokens than the dense ones');
      } finally {
        await t.server.close();
      }
    });
  }
});
