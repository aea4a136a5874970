// transformers Trainer options: schedules in the loop, --optim names, per-epoch evaluation and saving,
// best-checkpoint selection, early stopping, TensorBoard event files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resolveOptions, splitArgs } from '../../src/cli/options.js';
import { TRAIN_OPTIONS, toTrainCommandOptions } from '../../src/cli/train-options.js';
import { lrMultiplier, resolveLrSchedule } from '../../src/optim/index.js';
import { peftDropoutControl } from '../../src/train/peft-dropout.js';
import { crc32c as libCrc32c } from '../../src/train/tensorboard.js';
import { Trainer } from '../../src/train/trainer.js';
import type { TrainingArguments } from '../../src/train/training-args.js';
import { freshPeft, reversalExamples, tempDir, testArgs } from './helpers.js';

type Entry = Record<string, number | null>;
const readJson = async (path: string) => JSON.parse(await readFile(path, 'utf8'));
const checkpoints = (dir: string) => readdirSync(dir).filter((e) => e.startsWith('checkpoint-')).sort((a, b) => Number(a.slice(11)) - Number(b.slice(11)));

async function run(dir: string, overrides: Partial<TrainingArguments>, options: { trainCount?: number; signal?: AbortSignal; stopAt?: number; resumeFrom?: string } = {}) {
  const peft = await freshPeft();
  const stop = new AbortController();
  const trainer = new Trainer({
    model: peft,
    args: testArgs(dir, overrides),
    train: await reversalExamples(options.trainCount ?? 8),
    eval: await reversalExamples(3),
    padId: 0,
    dropout: peftDropoutControl(peft),
    callbacks: { onStep: (s) => s.step === options.stopAt && stop.abort() },
  });
  return { trainer, result: await trainer.train({ signal: stop.signal, resumeFrom: options.resumeFrom ?? null }) };
}

test('the Trainer steps at the rates of warmup_ratio and cosine_with_min_lr / warmup_stable_decay', async () => {
  for (const [overrides, kwargs] of [
    [{ lrScheduler: 'cosine_with_min_lr', warmupRatio: 0.3, lrSchedulerKwargs: { min_lr_rate: 0.1 } }, { min_lr_rate: 0.1 }],
    [{ lrScheduler: 'warmup_stable_decay', warmupRatio: 0.3, lrSchedulerKwargs: { num_decay_steps: 3, decay_type: 'linear' } }, { num_decay_steps: 3, decay_type: 'linear' }],
  ] as const) {
    const dir = await tempDir();
    const { result } = await run(dir, { ...overrides, warmupSteps: 0 });
    // 6 steps, warmup ceil(0.3 * 6) = 2.
    const o = resolveLrSchedule(overrides.lrScheduler, 1e-2, 2, 6, kwargs);
    const rates = result.state.logHistory.filter((e) => 'loss' in e).map((e) => e['learning_rate']);
    assert.deepEqual(rates, [0, 1, 2, 3, 4, 5].map((s) => 1e-2 * lrMultiplier(s, o)));
    assert.equal((await readJson(join(dir, 'training_args.json'))).warmup_ratio, 0.3);
  }
});

test('--optim: adamw_torch, adamw_torch_fused and paged_adamw_32bit train alike; other names are refused in one sentence', async () => {
  const adapters: Buffer[] = [];
  for (const optim of ['adamw_torch', 'adamw_torch_fused', 'paged_adamw_32bit'] as const) {
    const dir = await tempDir();
    await run(dir, { optim, maxSteps: 3 });
    assert.equal((await readJson(join(dir, 'training_args.json'))).optim, optim);
    adapters.push(await readFile(join(dir, 'adapter_model.safetensors')));
  }
  assert.deepEqual(adapters[1], adapters[0]);
  assert.deepEqual(adapters[2], adapters[0]);
  const dir = await tempDir();
  await assert.rejects(run(dir, { optim: 'adamw_8bit' as never }), { message: 'optim "adamw_8bit" is not supported; use one of adamw_torch, adamw_torch_fused, paged_adamw_32bit.' });
  const parse = (argv: string[]) => {
    const { flags } = splitArgs(argv, TRAIN_OPTIONS);
    return toTrainCommandOptions(resolveOptions(TRAIN_OPTIONS, flags, null), new Set(flags.keys()));
  };
  assert.throws(() => parse(['--optim', 'adamw_8bit']), /^UsageError: --optim must be one of adamw_torch, adamw_torch_fused, paged_adamw_32bit; got "adamw_8bit"\.$/);
  const o = parse(['--optim', 'paged_adamw_32bit', '--warmup-ratio', '0.1', '--lr-scheduler', 'cosine_with_min_lr', '--lr-scheduler-kwargs', '{"min_lr": 1e-5}', '--eval-strategy', 'epoch', '--save-strategy', 'epoch',
    '--load-best-model-at-end', '--metric-for-best-model', 'eval_loss', '--early-stopping-patience', '2', '--early-stopping-threshold', '0.01', '--report-to', 'tensorboard']);
  assert.deepEqual(
    [o.optim, o.warmupRatio, o.lrScheduler, o.lrSchedulerKwargs, o.evalStrategy, o.saveStrategy, o.loadBestModelAtEnd, o.metricForBestModel, o.greaterIsBetter, o.earlyStoppingPatience, o.earlyStoppingThreshold, o.reportTo],
    ['paged_adamw_32bit', 0.1, 'cosine_with_min_lr', { min_lr: 1e-5 }, 'epoch', 'epoch', true, 'eval_loss', null, 2, 0.01, 'tensorboard'],
  );
});

test('eval_strategy and save_strategy "epoch" evaluate and checkpoint at each epoch end', async () => {
  const dir = await tempDir();
  // 8 examples, micro-batches of 3, 2 per step: 2 steps per epoch; 3 epochs.
  const { result } = await run(dir, { maxSteps: null, epochs: 3, evalStrategy: 'epoch', saveStrategy: 'epoch' });
  assert.equal(result.state.globalStep, 6);
  assert.deepEqual(result.state.logHistory.filter((e) => 'eval_loss' in e).map((e) => [e['step'], e['epoch']]), [[2, 1], [4, 2], [6, 3]]);
  assert.deepEqual(checkpoints(dir), ['checkpoint-2', 'checkpoint-4', 'checkpoint-6']);
  const args = await readJson(join(dir, 'training_args.json'));
  assert.deepEqual([args.eval_strategy, args.save_strategy], ['epoch', 'epoch']);
  assert.throws(() => new Trainer({ model: null as never, args: testArgs(dir, { loadBestModelAtEnd: true, evalStrategy: 'epoch', saveStrategy: 'steps', saveSteps: 2 }), train: [], padId: 0 }), /match/);
});

test('load_best_model_at_end: the final adapter is the best checkpoint\'s, trainer_state names it as transformers does, and pruning keeps it', async () => {
  const dir = await tempDir();
  // greater_is_better on eval_loss makes an early checkpoint the best (the loss falls as it trains).
  const { result } = await run(dir, { evalStrategy: 'steps', evalSteps: 1, saveSteps: 1, saveTotalLimit: 1, loadBestModelAtEnd: true, metricForBestModel: 'eval_loss', greaterIsBetter: true });
  const evals = result.state.logHistory.filter((e) => 'eval_loss' in e) as Entry[];
  const best = evals.reduce((b, e) => (e['eval_loss']! > b['eval_loss']! ? e : b));
  assert.ok(best['step']! < 6, `the best step is an early one (${best['step']})`);
  const state = await readJson(join(dir, 'trainer_state.json'));
  assert.equal(state.best_model_checkpoint, `${dir}/checkpoint-${best['step']}`);
  assert.equal(state.best_metric, best['eval_loss']);
  assert.equal(state.best_global_step, best['step']);
  assert.deepEqual(checkpoints(dir), [`checkpoint-${best['step']}`, 'checkpoint-6']);
  assert.deepEqual(await readFile(join(dir, 'adapter_model.safetensors')), await readFile(join(dir, `checkpoint-${best['step']}`, 'adapter_model.safetensors')));
  assert.notDeepEqual(await readFile(join(dir, 'adapter_model.safetensors')), await readFile(join(dir, 'checkpoint-6', 'adapter_model.safetensors')));
  const args = await readJson(join(dir, 'training_args.json'));
  assert.deepEqual([args.metric_for_best_model, args.greater_is_better, args.load_best_model_at_end], ['eval_loss', true, true]);
});

test('early stopping as EarlyStoppingCallback: patience counts evaluations not better than the best by more than the threshold', async () => {
  const dir = await tempDir();
  const { result } = await run(dir, { evalStrategy: 'steps', evalSteps: 1, earlyStoppingPatience: 2, earlyStoppingThreshold: 100 });
  // Step 1 sets the best; steps 2 and 3 improve by less than 100, so the run stops after step 3's evaluation.
  assert.equal(result.state.globalStep, 3);
  assert.equal(result.interrupted, false);
  const state = await readJson(join(dir, 'trainer_state.json'));
  assert.deepEqual(state.stateful_callbacks, { EarlyStoppingCallback: { args: { early_stopping_patience: 2, early_stopping_threshold: 100 }, attributes: { early_stopping_patience_counter: 2 } } });
  assert.equal(state.best_global_step, 3); // the best metric still moves (strictly lower loss), as in transformers
  assert.equal(state.best_metric, (result.state.logHistory.filter((e) => 'eval_loss' in e).at(-1) as Entry)['eval_loss']);
});

test('a resumed run with best-model tracking and early stopping ends as the uninterrupted one', async () => {
  const overrides: Partial<TrainingArguments> = { evalStrategy: 'steps', evalSteps: 1, saveSteps: 1, loadBestModelAtEnd: true, greaterIsBetter: true, earlyStoppingPatience: 4 };
  const straightDir = await tempDir();
  const straight = await run(straightDir, overrides, { trainCount: 10 });
  const dir = await tempDir();
  const first = await run(dir, overrides, { trainCount: 10, stopAt: 3 });
  assert.equal(first.result.interrupted, true);
  const resumed = await run(dir, overrides, { trainCount: 10, resumeFrom: join(dir, 'checkpoint-3') });
  assert.equal(resumed.result.state.globalStep, straight.result.state.globalStep);
  const a = await readJson(join(straightDir, 'trainer_state.json'));
  const b = await readJson(join(dir, 'trainer_state.json'));
  assert.deepEqual([b.best_metric, b.best_global_step, b.stateful_callbacks], [a.best_metric, a.best_global_step, a.stateful_callbacks]);
  assert.equal(b.best_model_checkpoint, `${dir}/checkpoint-${a.best_global_step}`);
  assert.deepEqual(await readFile(join(dir, 'adapter_model.safetensors')), await readFile(join(straightDir, 'adapter_model.safetensors')));
});

// ---- an independent TFRecord / Event decoder ----

/** Bitwise CRC-32C (no table), to check the library's table-driven one. */
function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}
const masked = (b: Uint8Array) => {
  const c = crc32c(b);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
};

interface Field { no: number; wire: number; value: bigint | Uint8Array; }
function protoFields(b: Uint8Array): Field[] {
  const out: Field[] = [];
  let i = 0;
  const varint = () => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const x = b[i++]!;
      v |= BigInt(x & 0x7f) << shift;
      shift += 7n;
      if (!(x & 0x80)) return v;
    }
  };
  while (i < b.length) {
    const key = Number(varint());
    const wire = key & 7;
    if (wire === 0) out.push({ no: key >> 3, wire, value: varint() });
    else if (wire === 1) (out.push({ no: key >> 3, wire, value: b.slice(i, i + 8) }), (i += 8));
    else if (wire === 5) (out.push({ no: key >> 3, wire, value: b.slice(i, i + 4) }), (i += 4));
    else if (wire === 2) {
      const n = Number(varint());
      out.push({ no: key >> 3, wire, value: b.slice(i, i + n) });
      i += n;
    } else throw new Error(`wire type ${wire}`);
  }
  return out;
}

interface DecodedEvent { wallTime: number; step: number; fileVersion?: string; values: { tag: string; value: number }[]; }
function decodeEvents(file: Uint8Array): DecodedEvent[] {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const events: DecodedEvent[] = [];
  let off = 0;
  while (off < file.length) {
    const len = Number(view.getBigUint64(off, true));
    assert.equal(view.getUint32(off + 8, true), masked(file.subarray(off, off + 8)), 'length crc');
    const data = file.subarray(off + 12, off + 12 + len);
    assert.equal(view.getUint32(off + 12 + len, true), masked(data), 'data crc');
    off += 16 + len;
    const e: DecodedEvent = { wallTime: NaN, step: 0, values: [] };
    for (const f of protoFields(data)) {
      const bytes = f.value as Uint8Array;
      if (f.no === 1) e.wallTime = new DataView(bytes.buffer, bytes.byteOffset).getFloat64(0, true);
      else if (f.no === 2) e.step = Number(f.value as bigint);
      else if (f.no === 3) e.fileVersion = new TextDecoder().decode(bytes);
      else if (f.no === 5) {
        for (const v of protoFields(bytes).filter((x) => x.no === 1)) {
          const parts = protoFields(v.value as Uint8Array);
          const tag = new TextDecoder().decode(parts.find((p) => p.no === 1)!.value as Uint8Array);
          const raw = parts.find((p) => p.no === 2)!.value as Uint8Array;
          e.values.push({ tag, value: new DataView(raw.buffer, raw.byteOffset).getFloat32(0, true) });
        }
      }
    }
    events.push(e);
  }
  return events;
}

test('crc32c matches the known check values', () => {
  const ascii = (s: string) => new TextEncoder().encode(s);
  for (const f of [crc32c, libCrc32c]) {
    assert.equal(f(ascii('123456789')), 0xe3069283);
    assert.equal(f(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(f(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
    assert.equal(f(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  }
});

test('--report-to tensorboard writes a tfevents file under <output>/runs/ with TensorBoardCallback\'s tags', async () => {
  const dir = await tempDir();
  const { result } = await run(dir, { evalSteps: 3, reportTo: ['tensorboard'] });
  const runs = readdirSync(join(dir, 'runs'));
  assert.equal(runs.length, 1);
  const files = readdirSync(join(dir, 'runs', runs[0]!));
  assert.equal(files.length, 1);
  assert.match(files[0]!, /^events\.out\.tfevents\.\d{10}\..+\.\d+\.0$/);
  const events = decodeEvents(new Uint8Array(await readFile(join(dir, 'runs', runs[0]!, files[0]!))));
  assert.equal(events[0]!.fileVersion, 'brain.Event:2');
  assert.ok(events.every((e) => e.wallTime > 1.7e9));
  const scalars = events.slice(1).map((e) => [e.step, e.values[0]!.tag, e.values[0]!.value] as const);
  assert.ok(events.slice(1).every((e) => e.values.length === 1));
  const expected: (readonly [number, string, number])[] = [];
  for (const entry of result.state.logHistory) {
    for (const [k, v] of Object.entries(entry)) {
      if (k === 'step' || typeof v !== 'number') continue;
      expected.push([entry['step']!, k.startsWith('eval_') ? `eval/${k.slice(5)}` : `train/${k}`, Math.fround(v)]);
    }
  }
  assert.deepEqual(scalars, expected);
  const tags = new Set(scalars.map((s) => s[1]));
  for (const t of ['train/loss', 'train/learning_rate', 'train/grad_norm', 'train/epoch', 'eval/loss', 'eval/runtime', 'train/train_loss']) assert.ok(tags.has(t), t);
  assert.deepEqual(scalars.filter((s) => s[1] === 'eval/loss').map((s) => s[0]), [3, 6]);
});
