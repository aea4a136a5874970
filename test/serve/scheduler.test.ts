import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { configureGemm, gemmInfo, type GemmImplementation } from '../../src/backend/cpu/gemm.js';
import { getBackend } from '../../src/backend/registry.js';
import type { KvCache } from '../../src/models/kv-cache.js';
import type { CausalLMInput, CausalLMOutput, CausalLM } from '../../src/models/causal-lm.js';
import { BASE_ADAPTER_NAME, PeftModel } from '../../src/peft/index.js';
import { GREEDY_SAMPLING as GREEDY, type SamplingParams } from '../../src/serve/generation-params.js';
import { Scheduler, type DecoderModel } from '../../src/serve/scheduler.js';
import type { SequenceOutcome, SequenceRequest } from '../../src/serve/sequence.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { prepareTestDevice, TEST_DEVICE } from '../helpers/device.js';
import { blasLoads } from '../helpers/gemm.js';
import { adapterDir, fixtureGeneration, fixturePrompt, inputRow, loadFixtureModel } from './harness.js';

await prepareTestDevice();


/** A request that collects its tokens into `tokens`. */
function request(promptIds: number[], maxTokens: number, tokens: number[], extra: Partial<SequenceRequest> = {}): SequenceRequest {
  return {
    promptIds,
    adapterName: '__base__',
    maxTokens,
    sampling: GREEDY,
    stopTokenIds: new Set(),
    emitStopToken: false,
    logprobs: null,
    timeoutMs: 60_000,
    onToken: (t) => {
      tokens.push(t);
      return false;
    },
    ...extra,
  };
}

describe('Scheduler: continuous batching', () => {
  let model: CausalLM;
  before(async () => {
    model = await loadFixtureModel();
  });

  it('generates transformers\' greedy tokens for one sequence', async () => {
    const scheduler = new Scheduler(model, { maxBatch: 4, maxQueue: 4 });
    const tokens: number[] = [];
    const outcome = await scheduler.submit(request(await fixturePrompt(), 16, tokens));
    await scheduler.close();
    assert.deepEqual(tokens, await fixtureGeneration('base'));
    assert.deepEqual(outcome, { status: 'finished', finishReason: 'length', promptTokens: 8, completionTokens: 16, cachedTokens: 0, meanLogprob: null });
  });

  it('gives every sequence the same tokens alone and in a batch that others join and leave', async () => {
    const prompts = [await inputRow(0, 8), await inputRow(1, 5), await inputRow(2, 13), await inputRow(1, 20), await inputRow(0, 3)];
    const lengths = [16, 7, 22, 3, 30];
    const alone: number[][] = [];
    for (let i = 0; i < prompts.length; i++) {
      const scheduler = new Scheduler(model, { maxBatch: 1, maxQueue: 1 });
      const tokens: number[] = [];
      await scheduler.submit(request(prompts[i]!, lengths[i]!, tokens));
      await scheduler.close();
      alone.push(tokens);
    }
    const scheduler = new Scheduler(model, { maxBatch: 3, maxQueue: 8 });
    const together = prompts.map(() => [] as number[]);
    const done: Promise<SequenceOutcome>[] = [];
    for (let i = 0; i < prompts.length; i++) {
      done.push(scheduler.submit(request(prompts[i]!, lengths[i]!, together[i]!)));
      // Staggered arrivals: later sequences join a batch already decoding.
      await new Promise((r) => setTimeout(r, 2));
    }
    await Promise.all(done);
    await scheduler.close();
    assert.deepEqual(together, alone);
  });

  it('ends a sequence on a stop token id, counting it but not passing it on', async () => {
    const [first] = await fixtureGeneration('base');
    const scheduler = new Scheduler(model, { maxBatch: 2, maxQueue: 2 });
    const tokens: number[] = [];
    const outcome = await scheduler.submit(request(await fixturePrompt(), 16, tokens, { stopTokenIds: new Set([first!]) }));
    await scheduler.close();
    assert.deepEqual(tokens, []);
    assert.deepEqual(outcome, { status: 'finished', finishReason: 'stop', promptTokens: 8, completionTokens: 1, cachedTokens: 0, meanLogprob: null });
  });

  it('ends a sequence with "stop" when its token callback asks to', async () => {
    const scheduler = new Scheduler(model, { maxBatch: 2, maxQueue: 2 });
    const tokens: number[] = [];
    const outcome = await scheduler.submit({ ...request(await fixturePrompt(), 16, tokens), onToken: (t) => tokens.push(t) === 3 });
    await scheduler.close();
    assert.equal(tokens.length, 3);
    assert.deepEqual(outcome, { status: 'finished', finishReason: 'stop', promptTokens: 8, completionTokens: 3, cachedTokens: 0, meanLogprob: null });
  });

  it('refuses with 429 when the queue is full', async () => {
    const scheduler = new Scheduler(model, { maxBatch: 1, maxQueue: 1 });
    const prompt = await fixturePrompt();
    const first = scheduler.submit(request(prompt, 4, []));
    assert.throws(() => scheduler.submit(request(prompt, 4, [])), (e: { status?: number }) => e.status === 429);
    await first;
    await scheduler.close();
  });

  it('cancels an aborted sequence at the next step boundary', async () => {
    const scheduler = new Scheduler(model, { maxBatch: 2, maxQueue: 2 });
    const controller = new AbortController();
    const tokens: number[] = [];
    const outcome = scheduler.submit({ ...request(await fixturePrompt(), 200, tokens, { signal: controller.signal }), onToken: (t) => (tokens.push(t) === 2 && controller.abort(), false) });
    assert.deepEqual(await outcome, { status: 'cancelled' });
    assert.ok(tokens.length < 200);
    assert.equal(scheduler.runningCount, 0);
    await scheduler.close();
  });

  it('fails a sequence that runs past its timeout with a 504', async () => {
    const scheduler = new Scheduler(model, { maxBatch: 2, maxQueue: 2 });
    const outcome = await scheduler.submit(request(await fixturePrompt(), 200, [], { timeoutMs: 0 }));
    await scheduler.close();
    assert.equal(outcome.status, 'failed');
    assert.equal(outcome.status === 'failed' && outcome.error.status, 504);
  });

  it('runs exclusive tasks between steps, never during one', async () => {
    const scheduler = new Scheduler(model, { maxBatch: 2, maxQueue: 2 });
    const prompt = await fixturePrompt();
    const seen: string[] = [];
    const done = scheduler.submit({ ...request(prompt, 6, []), onToken: () => (seen.push('token'), false) });
    const task = scheduler.exclusive(async () => {
      seen.push('task');
      await new Promise((r) => setTimeout(r, 5));
      seen.push('task end');
    });
    await Promise.all([done, task]);
    await scheduler.close();
    const at = seen.indexOf('task');
    assert.equal(seen[at + 1], 'task end');
    assert.equal(seen.filter((s) => s === 'token').length, 6);
  });

  it('reads back only argmax ids for greedy rows, and logits only when a sampled or penalised row needs them', async () => {
    /** The model, counting the steps whose logits were read back to the host. */
    let logitReads = 0;
    const counting: DecoderModel = {
      config: model.config,
      device: model.device,
      newCache: (n) => model.newCache(n),
      run: (input) => {
        const out = model.run(input);
        const data = out.logits.data.bind(out.logits);
        out.logits.data = () => (logitReads++, data());
        return out;
      },
    };
    const sampled: SamplingParams = { ...GREEDY, temperature: 0.8, topK: 20, seed: 7 };
    const penalised: SamplingParams = { ...GREEDY, presencePenalty: 1.5, frequencyPenalty: 0.5 };
    const prompts = [await inputRow(0, 8), await inputRow(1, 5), await inputRow(2, 13), await inputRow(1, 9)];
    const params = [GREEDY, sampled, penalised, GREEDY];
    const alone: number[][] = [];
    const readsAlone: number[] = [];
    for (let i = 0; i < prompts.length; i++) {
      const scheduler = new Scheduler(counting, { maxBatch: 1, maxQueue: 1 });
      const tokens: number[] = [];
      logitReads = 0;
      await scheduler.submit(request(prompts[i]!, 10, tokens, { sampling: params[i]! }));
      await scheduler.close();
      alone.push(tokens);
      readsAlone.push(logitReads);
    }
    assert.deepEqual(readsAlone, [0, 10, 10, 0], 'a greedy sequence never reads logits; the others read them at every step');
    const scheduler = new Scheduler(counting, { maxBatch: 4, maxQueue: 4 });
    const together = prompts.map(() => [] as number[]);
    await Promise.all(prompts.map((p, i) => scheduler.submit(request(p, 10, together[i]!, { sampling: params[i]! }))));
    await scheduler.close();
    // Sampled rows repeat their tokens in a batch only where decode steps are batch-invariant (Backend.batchInvariant).
    const compared = getBackend(model.device).batchInvariant ? [0, 1, 2, 3] : [0, 3];
    assert.deepEqual(compared.map((i) => together[i]), compared.map((i) => alone[i]));
    assert.deepEqual(alone[0], (await fixtureGeneration('base')).slice(0, 10));
  });
});

/** The model, keeping the logits of every decode step with the sequences (numbered by cache creation) of its rows. */
class DecodeRecorder implements DecoderModel {
  private readonly caches: KvCache[] = [];
  private readonly steps: { sequences: number[]; logits: Tensor }[] = [];

  constructor(private readonly model: CausalLM) {}

  get config(): CausalLM['config'] {
    return this.model.config;
  }
  get device(): string {
    return this.model.device;
  }

  newCache(capacity: number): KvCache {
    const cache = this.model.newCache(capacity);
    this.caches.push(cache);
    return cache;
  }

  run(input: CausalLMInput): CausalLMOutput {
    const out = this.model.run(input);
    // Prompts are longer than one token, so one token per row is a decode step.
    if ((input.inputIds as number[][]).every((row) => row.length === 1)) {
      this.steps.push({ sequences: input.caches!.map((c) => this.caches.indexOf(c)), logits: out.logits.keep() });
    }
    return out;
  }

  /** Each sequence's logits from the first decode step it was in. */
  async firstDecodeLogits(): Promise<Float32Array[]> {
    const vocab = this.model.config.vocabSize;
    const found: Float32Array[] = [];
    for (const { sequences, logits } of this.steps) {
      const data = await logits.data();
      sequences.forEach((seq, row) => (found[seq] ??= data.slice(row * vocab, (row + 1) * vocab)));
      logits.dispose();
    }
    return found;
  }
}

/** Decodes each request's first token after its prompt with a scheduler that takes `maxBatch` rows at a time. */
async function firstDecodeLogits(model: CausalLM, requests: readonly { prompt: number[]; adapter: string }[], maxBatch: number): Promise<Float32Array[]> {
  const recorder = new DecodeRecorder(model);
  const scheduler = new Scheduler(recorder, { maxBatch, maxQueue: requests.length });
  // Submitted in one tick: the loop prefills them in this order, then decodes up to maxBatch of them together.
  await Promise.all(requests.map((r) => scheduler.submit(request(r.prompt, 2, [], { adapterName: r.adapter }))));
  await scheduler.close();
  return recorder.firstDecodeLogits();
}

/** Where the GEMM is a choice (the CPU), each implementation; elsewhere the device's own. */
const IMPLEMENTATIONS: readonly (GemmImplementation | null)[] = TEST_DEVICE === 'cpu' ? ['openblas', 'workers', 'single-thread'] : [null];
const invariantDevice = getBackend(TEST_DEVICE).batchInvariant !== undefined;

for (const implementation of IMPLEMENTATIONS) {
  const skip = !invariantDevice
    ? `the ${TEST_DEVICE} backend has no batch-invariant matmuls`
    : implementation === 'openblas' && !blasLoads() ? 'no CBLAS library on this machine' : false;
  describe(`Scheduler: a row's decode logits do not depend on the rest of the batch${implementation ? ` (GEMM: ${implementation})` : ''}`, { skip }, () => {
    let model: CausalLM;
    const requests: { prompt: number[]; adapter: string }[] = [];
    before(async () => {
      if (implementation) configureGemm({ implementation, parallelMinFlops: 0 });
      model = await loadFixtureModel();
      const peft = await PeftModel.fromPretrained(model, adapterDir('lora'), { adapterName: 'lora' });
      await peft.loadAdapter(adapterDir('rslora'), 'rslora');
      const rows: [number, number, string][] = [[0, 8, 'lora'], [1, 8, BASE_ADAPTER_NAME], [2, 8, 'rslora'], [1, 4, 'lora'], [0, 5, 'rslora'], [2, 3, BASE_ADAPTER_NAME], [1, 7, 'lora'], [0, 6, 'rslora']];
      for (const [row, length, adapter] of rows) requests.push({ prompt: await inputRow(row, length), adapter });
    });
    after(() => configureGemm({ implementation: 'auto' }));

    it('runs on the implementation it names', { skip: implementation === null }, () => {
      assert.equal(gemmInfo().implementation, implementation);
    });

    it('gives every sequence the same logits bits alone and in one batch of eight with three adapters', async () => {
      const alone: Float32Array[] = [];
      for (const r of requests) alone.push((await firstDecodeLogits(model, [r], 1))[0]!);
      const together = await firstDecodeLogits(model, requests, requests.length);
      assert.equal(together.length, requests.length);
      together.forEach((logits, i) => assert.deepEqual(logits, alone[i], `sequence ${i} (${requests[i]!.adapter})`));
    });
  });
}

describe('Scheduler: prefix caching and a bounded KV pool', () => {
  /** The model, recording the rows and tokens per row of every forward pass. */
  function recording(model: CausalLM, passes: { rows: number; tokens: number }[]): DecoderModel {
    return {
      config: model.config,
      device: model.device,
      newCache: (n, prefix) => model.newCache(n, prefix),
      run: (input) => {
        const ids = input.inputIds as number[][];
        passes.push({ rows: ids.length, tokens: ids[0]!.length });
        return model.run(input);
      },
    };
  }

  it('prefills only what follows a published prefix, and generates what a scheduler without the cache does', async () => {
    const model = await loadFixtureModel();
    const system = Array.from({ length: 50 }, (_, i) => (i * 29 + 5) % 384);
    const prompts = [[...system, 1, 2, 3], [...system, 7, 8], [...system, 9, 10, 11, 12], system.slice(0, 40)];
    const expected: number[][] = [];
    const off = new Scheduler(model, { maxBatch: 4, maxQueue: 4 });
    for (const p of prompts) {
      const tokens: number[] = [];
      await off.submit(request(p, 12, tokens));
      expected.push(tokens);
    }
    await off.close();
    const passes: { rows: number; tokens: number }[] = [];
    const on = new Scheduler(recording(model, passes), { maxBatch: 4, maxQueue: 4, prefixCaching: true });
    const got = prompts.map(() => [] as number[]);
    // All arrive together: prefills run one at a time, so the first publishes the system prompt before the others
    // look it up, and all four decode in one batch.
    const outcomes = await Promise.all(prompts.map((p, i) => on.submit(request(p, 12, got[i]!))));
    await on.close();
    assert.deepEqual(got, expected);
    const cached = outcomes.map((o) => (o.status === 'finished' ? o.cachedTokens : -1));
    // 53 tokens publish 3 blocks; 40 tokens share floor(39 / 16) = 2 of them.
    assert.deepEqual(cached, [0, 48, 48, 32]);
    const prefills = passes.filter((p) => p.tokens > 1).map((p) => p.tokens);
    assert.deepEqual(prefills, [53, 52 - 48, 54 - 48, 40 - 32], 'each prefill computed only the tokens after its shared blocks');
    model.releaseKvPool();
  });

  it('publishes a finished sequence\'s generated tokens too, so the next turn of a conversation shares them', async () => {
    const model = await loadFixtureModel();
    const prompt = Array.from({ length: 40 }, (_, i) => (i * 23 + 9) % 384);
    const on = new Scheduler(model, { maxBatch: 2, maxQueue: 2, prefixCaching: true });
    const answer: number[] = [];
    await on.submit(request(prompt, 30, answer));
    // 40 + 30 tokens, 69 positions stored (the last token has no keys): 4 full blocks, where the prompt had 2.
    const turn = [...prompt, ...answer, 3, 1, 4];
    const got: number[] = [];
    const outcome = await on.submit(request(turn, 10, got));
    await on.close();
    assert.equal(outcome.status === 'finished' && outcome.cachedTokens, 64);
    model.releaseKvPool();
    const off = new Scheduler(model, { maxBatch: 2, maxQueue: 2 });
    const expected: number[] = [];
    await off.submit(request(turn, 10, expected));
    await off.close();
    assert.deepEqual(got, expected);
    // A sequence that did not finish publishes only its prompt's blocks.
    const cancelled = new Scheduler(model, { maxBatch: 2, maxQueue: 2, prefixCaching: true });
    const controller = new AbortController();
    let seen = 0;
    const ended = await cancelled.submit(request(prompt, 30, [], { signal: controller.signal, onToken: () => (++seen === 20 && controller.abort(), false) }));
    assert.equal(ended.status, 'cancelled');
    assert.equal(model.pagedKvPool.cachedBlocks, 2);
    await cancelled.close();
    model.releaseKvPool();
  });

  it('keeps a sequence queued while the pool at its block limit is held, and runs it once blocks come back', async () => {
    const model = await loadFixtureModel();
    const prompts = [await inputRow(0, 20), await inputRow(1, 20)];
    const alone: number[][] = [];
    for (const p of prompts) {
      const s = new Scheduler(model, { maxBatch: 2, maxQueue: 2 });
      const tokens: number[] = [];
      await s.submit(request(p, 20, tokens));
      await s.close();
      alone.push(tokens);
    }
    model.configureKvPool({ maxBlocks: 3 });
    const passes: { rows: number; tokens: number }[] = [];
    const s = new Scheduler(recording(model, passes), { maxBatch: 2, maxQueue: 2 });
    // 20 + 20 positions: 3 blocks each, so the two never hold the pool together.
    const together = prompts.map(() => [] as number[]);
    const outcomes = await Promise.all(prompts.map((p, i) => s.submit(request(p, 20, together[i]!))));
    await s.close();
    assert.deepEqual(outcomes.map((o) => o.status), ['finished', 'finished']);
    assert.deepEqual(together, alone);
    assert.equal(Math.max(...passes.map((p) => p.rows)), 1, 'no step ran both sequences');
    assert.equal(model.pagedKvPool.capacity, 3);
    model.releaseKvPool();
  });
});
