import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { describeSummary, prepareDataset, type NormalizedExample } from '../data/index.js';
import type { CausalLM } from '../models/causal-lm.js';
import { getPeftModelAsync, PeftModel, resolveLoraConfig, type LoraConfig } from '../peft/index.js';
import { unmatchedTargetNames } from '../peft/targets.js';
import { resolvePretrained } from '../io/hub.js';
import { loadConfig } from '../models/config.js';
import { AutoTokenizer, type PreTrainedTokenizer } from '../tokenizer/index.js';
import { checkpointSteps, latestCheckpoint } from '../train/checkpoint-dir.js';
import { TrainingError } from '../train/errors.js';
import { JsonFields, readJsonObject } from '../train/json-fields.js';
import { exactMatch, type ExactMatchResult } from '../train/generation-eval.js';
import { enableGradientCheckpointing } from '../train/gradient-checkpointing.js';
import { peftDropoutControl } from '../train/peft-dropout.js';
import { formatSeconds, progressCallbacks } from '../train/progress.js';
import { writeReport, type ReportSample } from '../train/report.js';
import { quantMemoryReport } from '../quant/memory-report.js';
import { gemmInfo, type GemmInfo } from '../backend/cpu/gemm.js';
import { getBackend } from '../backend/registry.js';
import { CudaBackend } from '../backend/cuda/cuda-backend.js';
import { Trainer } from '../train/trainer.js';
import { checkTrainingArguments, type TrainingArguments } from '../train/training-args.js';
import { BUILTIN } from './builtin-example.js';
import { readConfigFile } from './config-file.js';
import { UsageError } from './errors.js';
import { loadModelFrom, tokenizerFolder } from './model-source.js';
import { closest, commandHelp, normalizeConfig, resolveOptions, splitArgs, type OptionValues } from './options.js';
import { clearRunFolder, prepareRunFolder } from './run-folder.js';
import { TRAIN_OPTIONS, toTrainCommandOptions, type TrainCommandOptions } from './train-options.js';

export const TRAIN_HELP = commandHelp('train [options]', 'Fine-tune a LoRA adapter on a dataset (JSONL, parquet or a Hub dataset); without --model and --data, the built-in example (a small model learns to reverse strings, ~2 minutes on 2 cores).', TRAIN_OPTIONS);

/** Options left out of training_args.json's loraforge_options (the rest is remembered, so that --resume needs no other flag). */
const NOT_REMEMBERED = new Set(['config', 'resume', 'overwrite']);
/** At most this many held-out examples are scored by generation before and after training. */
const SCORED_EXAMPLES = 200;

/** Flags over --config over the remembered run (with --resume) or the built-in preset (without --model/--data). */
async function resolveTrainOptions(argv: readonly string[]): Promise<TrainCommandOptions> {
  const { flags, positionals } = splitArgs(argv, TRAIN_OPTIONS);
  if (positionals.length) throw new UsageError(`train takes no positional arguments (got "${positionals[0]}"); data and model are given with --data and --model.`);
  const configPath = flags.get('config');
  // Keys as the options they set (learning_rate is lr), so that they override the preset's or the remembered run's.
  const userConfig = typeof configPath === 'string' ? normalizeConfig(TRAIN_OPTIONS, await readConfigFile(configPath), configPath) : {};
  const peek = resolveOptions(TRAIN_OPTIONS, flags, userConfig, typeof configPath === 'string' ? configPath : undefined);
  let base: Record<string, unknown> = {};
  if (peek['resume'] !== undefined) {
    const output = peek['output'] ?? (typeof peek['resume'] === 'string' ? dirname(String(peek['resume'])) : undefined);
    if (output === undefined) throw new UsageError('--resume needs --output (the run folder to continue) or the path of a checkpoint folder.');
    base = { ...(await rememberedOptions(String(output))), output };
  } else if (peek['model'] === undefined && peek['data'] === undefined) {
    base = await readConfigFile(BUILTIN.preset);
  }
  const values = resolveOptions(TRAIN_OPTIONS, flags, { ...base, ...userConfig }, typeof configPath === 'string' ? configPath : undefined);
  return toTrainCommandOptions(values, new Set([...flags.keys(), ...Object.keys(userConfig)]));
}

/** training_args.json's loraforge_options, each checked as a config field of that file. */
async function rememberedOptions(output: string): Promise<Record<string, unknown>> {
  const path = join(output, 'training_args.json');
  if (!existsSync(path)) throw new UsageError(`${output} holds no training run to resume (no training_args.json); start one without --resume.`);
  const fix = 'the run folder is damaged, so start again with --overwrite';
  const saved = new JsonFields(path, await readJsonObject(path, fix), fix);
  const remembered = saved.get('loraforge_options') ?? {};
  if (typeof remembered !== 'object' || remembered === null || Array.isArray(remembered)) saved.fail('loraforge_options', 'must be an object of option names to values');
  const options = normalizeConfig(TRAIN_OPTIONS, remembered as Record<string, unknown>, `${path} loraforge_options`);
  resolveOptions(TRAIN_OPTIONS, new Map(), options, `${path} loraforge_options`);
  return options;
}

function rememberable(values: OptionValues): Record<string, unknown> {
  return Object.fromEntries(Object.entries(values).filter(([k, v]) => v !== undefined && !NOT_REMEMBERED.has(k)));
}

function defaultOutput(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return join('runs', `run-${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`);
}

export async function runTrain(argv: readonly string[]): Promise<number> {
  const o = await resolveTrainOptions(argv);
  const builtin = o.model === null && o.data === null;
  if (!builtin && (o.model === null || o.data === null)) {
    throw new UsageError(`--${o.model === null ? 'model' : 'data'} is missing; give both --model and --data, or neither to run the built-in example.`);
  }
  if (builtin) {
    console.log(`Using the built-in example (${BUILTIN.dir}): a LoRA learns to reverse 3-6 letter strings on a small random Llama. Pass --model and --data to train on your own.`);
  }
  const output = o.output ?? defaultOutput();
  const outputExisted = existsSync(output);
  await prepareRunFolder(output, { overwrite: o.overwrite, resume: o.resume !== null });
  const checkpoint = o.resume === null ? null : o.resume === true ? await latestCheckpoint(output) : o.resume;
  if (o.resume !== null && !checkpoint) throw new UsageError(`${output} has no checkpoint yet, so there is nothing to resume; start again with --overwrite.`);
  if (checkpoint && !existsSync(join(checkpoint, 'trainer_state.json'))) {
    throw new UsageError(`${checkpoint} is not a checkpoint folder (no trainer_state.json); resume from another checkpoint with --resume <folder>, or start again with --overwrite.`);
  }

  const modelFolder = builtin ? 'builtin' : o.model!;
  // Rows longer than the model's positions are refused before any data is read (RoPE tables end there).
  const context = (await loadConfig(await resolvePretrained(tokenizerFolder(modelFolder)))).maxPositionEmbeddings;
  if (o.seqLen > context) {
    if (o.explicit.has('seq-len')) throw new UsageError(`--seq-len ${o.seqLen} is longer than the model's context of ${context} tokens (max_position_embeddings); give --seq-len ${context} or less.`);
    // The default (512) on a shorter model: its context, as TRL caps max_seq_length at the model's.
    o.seqLen = context;
    o.values['seq-len'] = context;
  }
  const tok = await AutoTokenizer.fromPretrained(tokenizerFolder(modelFolder));
  const data = await prepareDataset(
    {
      path: builtin ? BUILTIN.train : o.data!,
      ...(o.dataSplit !== null ? { split: o.dataSplit } : {}),
      ...(o.dataFiles !== null ? { dataFiles: o.dataFiles } : {}),
      ...(o.dataColumns !== null ? { columns: o.dataColumns } : {}),
      validationPath: builtin ? BUILTIN.validation : (o.validationData ?? undefined),
      ...(o.validationDataSplit !== null ? { validationDataSplit: o.validationDataSplit } : {}),
      validationSplit: o.validationSplit,
      format: o.dataFormat,
      seqLen: o.seqLen,
      packing: o.packing,
      trainOnInputs: o.trainOnInputs,
      ...(o.chatTemplateKwargs ? { chatTemplate: { templateKwargs: o.chatTemplateKwargs } } : {}),
      skipMalformed: o.skipMalformed,
      maxLineBytes: o.maxLineBytes,
      seed: o.seed,
    },
    tok,
  );
  const dataLines = describeSummary(data.summary);
  for (const line of dataLines) console.log(line);

  // QLoRA loads in the compute dtype unless --dtype says otherwise, as transformers does with load_in_4bit.
  const dtype = o.qlora && !o.explicit.has('dtype') ? 'auto' : o.dtype;
  const base = await loadModelFrom(modelFolder, dtype, o.device, o.qlora);
  if (o.device === 'cpu') console.log(describeCpuGemm(gemmInfo()));
  const scored = data.eval?.records.slice(0, SCORED_EXAMPLES) ?? [];
  const before = scored.length ? await scoreAndReport('before training', base, tok, scored) : null;

  if (!checkpoint) warnUnmatchedTargets(base, o.targetModules);
  const peft = checkpoint
    ? await PeftModel.fromPretrained(base, checkpoint, { isTrainable: true })
    : await getPeftModelAsync(base, loraConfigOf(o, builtin));
  peft.printTrainableParameters();
  const dropout = peftDropoutControl(peft);
  if (o.gradientCheckpointing) enableGradientCheckpointing(peft.model, dropout.rng);

  const args: TrainingArguments = {
    outputDir: output, epochs: o.epochs, maxSteps: o.maxSteps, batchSize: o.batchSize, gradAccum: o.gradAccum, lr: o.lr,
    weightDecay: o.weightDecay, adamBeta1: 0.9, adamBeta2: 0.999, adamEpsilon: 1e-8, lrScheduler: o.lrScheduler,
    warmupSteps: o.warmupSteps, maxGradNorm: o.maxGradNorm, seed: o.seed, loggingSteps: o.loggingSteps, evalSteps: o.evalSteps,
    saveSteps: o.saveSteps, saveTotalLimit: o.saveTotalLimit, gradientCheckpointing: o.gradientCheckpointing, shuffle: true,
    loraplusLrRatio: o.loraplusLrRatio,
    warmupRatio: o.warmupRatio, optim: o.optim, earlyStoppingThreshold: o.earlyStoppingThreshold, loadBestModelAtEnd: o.loadBestModelAtEnd,
    ...(o.lrSchedulerKwargs ? { lrSchedulerKwargs: o.lrSchedulerKwargs } : {}),
    ...(o.evalStrategy ? { evalStrategy: o.evalStrategy } : {}),
    ...(o.saveStrategy ? { saveStrategy: o.saveStrategy } : {}),
    ...(o.metricForBestModel !== null ? { metricForBestModel: o.metricForBestModel } : {}),
    ...(o.greaterIsBetter !== null ? { greaterIsBetter: o.greaterIsBetter } : {}),
    ...(o.earlyStoppingPatience !== null ? { earlyStoppingPatience: o.earlyStoppingPatience } : {}),
    ...(o.reportTo === 'tensorboard' ? { reportTo: ['tensorboard' as const] } : {}),
  };
  try {
    checkTrainingArguments(args);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const progress = progressCallbacks({ every: o.loggingSteps });
  const trainer = new Trainer({
    model: peft,
    args,
    train: data.train.examples,
    eval: data.eval?.examples ?? null,
    padId: tok.padTokenId ?? tok.eosTokenId ?? 0,
    dropout,
    callbacks: progress,
    argsJsonExtra: { model_name_or_path: builtin ? 'builtin-example' : o.model, loraforge_options: rememberable(o.values) },
  });
  const controller = new AbortController();
  const onSigint = () => {
    progress.stop();
    console.log('\nInterrupted: finishing this step and writing a checkpoint (press Ctrl-C again to quit at once).');
    controller.abort();
    process.once('SIGINT', () => process.exit(130));
  };
  process.once('SIGINT', onSigint);
  let result;
  try {
    result = await trainer.train({ resumeFrom: checkpoint, signal: controller.signal });
  } catch (err) {
    // A fresh run that stopped before its first checkpoint leaves nothing to resume: the folder goes back to how it was.
    if (err instanceof TrainingError && checkpoint === null && (await checkpointSteps(output)).length === 0) {
      await clearRunFolder(output);
      if (!outputExisted) await rm(output, { recursive: true, force: true });
    }
    throw err;
  } finally {
    progress.stop();
    process.removeListener('SIGINT', onSigint);
  }
  const resumeHint = `loraforge train --output ${output} --resume`;
  if (result.interrupted) {
    console.log(`Stopped at step ${result.state.globalStep}/${result.state.maxSteps}; the checkpoint is saved. Continue with: ${resumeHint}`);
    return 130;
  }
  const lastEval = [...result.state.logHistory].reverse().find((e) => typeof e['eval_loss'] === 'number');
  console.log(`trained ${result.state.globalStep} steps in ${formatSeconds(result.runtimeSeconds)}; train loss ${result.trainLoss.toFixed(4)}${lastEval ? `, eval loss ${(lastEval['eval_loss'] as number).toFixed(4)}` : ''}`);

  peft.eval();
  const after = scored.length ? await scoreAndReport('after training', peft.model, tok, scored) : null;
  const samples: ReportSample[] = before && after ? before.answers.slice(0, o.samples).map((b, i) => ({ prompt: b.prompt, reference: b.reference, before: b.output, after: after.answers[i]!.output })) : [];
  if (samples.length) {
    console.log('samples (prompt => before | after | reference):');
    for (const s of samples) console.log(`  ${JSON.stringify(s.prompt)} => ${JSON.stringify(s.before)} | ${JSON.stringify(s.after)} | ${JSON.stringify(s.reference)}`);
  }
  const memory = memoryLines(peft.model, o.device);
  const report = await writeReport(output, {
    title: `loraforge run: ${builtin ? 'built-in example' : basename(o.model!)} on ${builtin ? 'string reversal' : basename(o.data!)}`,
    config: { ...rememberable(o.values), output },
    notes: [
      ...dataLines,
      `${result.state.globalStep} optimizer steps, ${result.state.numInputTokensSeen} tokens, ${formatSeconds(result.runtimeSeconds)} in this process`,
      `adapter: ${peft.getNbTrainableParameters().trainable.toLocaleString('en-US')} trainable parameters; optimizer state ${(trainer.optimizer.stateBytes() / 1024).toFixed(0)} KiB`,
      ...memory,
    ],
    logHistory: result.state.logHistory,
    epochs: result.state.epoch,
    scores: before && after ? [{ name: `held-out exact match (${scored.length} examples)`, before: before.accuracy, after: after.accuracy }] : [],
    samples,
  });
  if (before && after) console.log(`held-out exact match: ${pct(before.accuracy)} before -> ${pct(after.accuracy)} after (${scored.length} examples)`);
  for (const line of memory) console.log(line);
  console.log(`adapter written to ${output} (adapter_config.json, adapter_model.safetensors); report: ${report}`);
  return 0;
}

/** The LoRA config the train flags describe; combinations PEFT refuses are refused by resolveLoraConfig (src/peft/config.ts). */
export function loraConfigOf(o: TrainCommandOptions, builtin: boolean): LoraConfig {
  const config: LoraConfig & { trainableTokenIndices?: unknown } = {
    r: o.r, loraAlpha: o.loraAlpha, loraDropout: o.loraDropout, targetModules: o.targetModules, useRslora: o.useRslora, useDora: o.useDora,
    seed: o.seed, baseModelNameOrPath: builtin ? null : o.model,
    ...(o.targetParameters !== null ? { targetParameters: o.targetParameters } : {}),
    ...(o.excludeModules !== null ? { excludeModules: o.excludeModules } : {}),
    ...(o.layersToTransform !== null ? { layersToTransform: o.layersToTransform } : {}),
    ...(o.layersPattern !== null ? { layersPattern: o.layersPattern } : {}),
    ...(o.rankPattern !== null ? { rankPattern: o.rankPattern } : {}),
    ...(o.alphaPattern !== null ? { alphaPattern: o.alphaPattern } : {}),
    ...(o.initLoraWeights !== true ? { initLoraWeights: o.initLoraWeights as LoraConfig['initLoraWeights'] } : {}),
    ...(o.modulesToSave !== null ? { modulesToSave: o.modulesToSave } : {}),
    ...(o.trainableTokenIndices !== null ? { trainableTokenIndices: o.trainableTokenIndices } : {}),
  };
  // Until src/peft reads trainable_token_indices, refuse it rather than drop it.
  if (o.trainableTokenIndices !== null && !('trainableTokenIndices' in resolveLoraConfig({}))) {
    throw new UsageError('--trainable-token-indices is not supported by this build of loraforge; leave it out.');
  }
  return config;
}

/** One line on stderr when some --target-modules names match no module while others do (PEFT trains the others silently). */
function warnUnmatchedTargets(model: CausalLM, targets: string | string[]): void {
  const paths = [...model.namedModules()].map(([path]) => path);
  const unmatched = unmatchedTargetNames(paths, targets);
  if (unmatched.length === 0 || typeof targets === 'string' || unmatched.length === targets.length) return;
  const names = [...new Set(paths.map((p) => p.split('.').at(-1)!).filter((n) => !/^\d+$/.test(n) && n !== ''))];
  const guesses = unmatched.map((t) => closest(t, names)).filter((g): g is string => g !== null);
  const matched = targets.filter((t) => !unmatched.includes(t));
  console.error(
    `loraforge: warning: --target-modules ${unmatched.join(', ')} ${unmatched.length === 1 ? 'matches' : 'match'} no module of the model, so only ${matched.join(', ')} ${matched.length === 1 ? 'is' : 'are'} adapted${guesses.length ? `; did you mean ${guesses.join(', ')}?` : '.'}`,
  );
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const mib = (b: number) => (b < 2 ** 20 ? `${(b / 1024).toFixed(1)} KiB` : `${(b / 2 ** 20).toFixed(1)} MiB`);

/** Where the memory went: weights by role (4-bit codes and constants apart), and the peak of the whole run. */
function memoryLines(model: CausalLM, device: string): string[] {
  const m = quantMemoryReport(model);
  const weights = m.quantizedLayers
    ? `memory: 4-bit base weights ${mib(m.packedWeightBytes)} + quantization constants ${mib(m.quantConstantBytes)} (${m.quantizedLayers} layers), other frozen weights ${mib(m.frozenParameterBytes)}, adapters ${mib(m.trainableParameterBytes)}`
    : `memory: frozen weights ${mib(m.frozenParameterBytes)}, adapters ${mib(m.trainableParameterBytes)}`;
  const backend = getBackend(device);
  const peak = backend instanceof CudaBackend
    ? `peak GPU memory in use ${mib(backend.memoryStats().peak)} (weights, optimizer state and activations)`
    : `peak resident memory of the process ${mib(process.resourceUsage().maxRSS * 1024)}`;
  return [weights, peak];
}

async function scoreAndReport(when: string, model: CausalLM, tok: PreTrainedTokenizer, records: readonly NormalizedExample[]): Promise<ExactMatchResult> {
  const result = await exactMatch(model, tok, records);
  console.log(`held-out exact match ${when}: ${pct(result.accuracy)} of ${result.answers.length}`);
  return result;
}

/** One line on which GEMM the CPU backend runs, and how to get a faster one when it is the built-in. */
export function describeCpuGemm(info: GemmInfo): string {
  if (info.implementation === 'openblas') return `CPU GEMM: ${info.library ?? 'a CBLAS library'} (${info.threads} threads).`;
  return (
    `CPU GEMM: loraforge's built-in WebAssembly SIMD GEMM (${info.threads} thread${info.threads === 1 ? '' : 's'}), whose products run about 3x slower than OpenBLAS's; ` +
    'install it (`apt-get install libopenblas0-pthread`, `brew install openblas`) or point LORAFORGE_BLAS at a CBLAS library.'
  );
}
