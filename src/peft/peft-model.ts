import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { resolvePretrained } from '../io/hub.js';
import type { CausalLMInput, CausalLMOutput, CausalLM } from '../models/causal-lm.js';
import { Module, type LinearLike } from '../nn/module.js';
import { to } from '../ops/index.js';
import type { DType } from '../tensor/dtype.js';
import { noGrad } from '../tensor/grad-mode.js';
import { Rng } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { adapterFolder, ADAPTER_WEIGHTS_NAME, openAdapterWeights, writeAdapterFolder } from './adapter-files.js';
import { prepareAdapterTensors, storedAdapterPlaceholders } from './adapter-load.js';
import { adapterStateEntries, entryTensor } from './adapter-state.js';
import { initialWeights, zeroWeights, type AdapterWeightsFactory } from './adapter-weights.js';
import { resolveLoraConfig, type LoraConfig, type ResolvedLoraConfig } from './config.js';
import { ADAPTER_CONFIG_NAME, readAdapterConfig } from './config-json.js';
import { PeftError } from './errors.js';
import { saveModelPretrained, type SaveModelOptions } from './export-checkpoint.js';
import { injectAdapter } from './inject.js';
import { initFromBase, initOrthogonal, rewritesBase } from './base-init.js';
import { convertMutatedToLora } from './weight-conversion.js';
import { assertFiniteMerge, isRequantizing, mergeIntoQuantized, unmergeFromQuantized } from './merge-layers.js';
import { LoraLinear } from './lora-linear.js';
import { otherAdapterLayers, isPeftLayer, loraLayers, modulesToSaveWrappers, walkModules } from './module-walk.js';
import { LoraEmbedding } from './lora-embedding.js';
import { LoraExperts } from './lora-experts.js';
import { TrainableTokensWrapper } from './trainable-tokens.js';
import { writeModelCard } from './model-card.js';
import { ModulesToSaveWrapper } from './modules-to-save.js';
import { BASE_ADAPTER_NAME, type LoraRuntimeState } from './runtime-state.js';
import { countParameters, formatTrainableParameters, type ParameterCounts } from './trainable.js';
import { COMBINATION_TYPES, fillWeightedAdapter, isCombinationType, isDare, needsDensity, SVD_DRIVERS, weightedAdapterConfig, type CombinationType, type MajoritySignMethod, type SvdDriver } from './weighted-adapter.js';

export interface LoadAdapterOptions {
  /** Train the loaded adapter (default false: its tensors are frozen, PEFT's inference mode). */
  isTrainable?: boolean;
  /** For Hub repo ids: branch, tag or commit; access token; cache folder. */
  revision?: string;
  token?: string;
  cacheDir?: string;
  /**
   * Store the adapter's own tensors (lora_A, lora_B, DoRA magnitudes, modules_to_save copies) in this dtype; default:
   * the file's dtype. Serving a bfloat16 model with bfloat16 adapters halves the bytes each decode step reads per
   * adapter (vLLM stores LoRA weights in the model's dtype likewise); PEFT itself computes adapters in float32.
   */
  dtype?: DType;
}

export interface FromPretrainedOptions extends LoadAdapterOptions {
  /** Name under which the adapter is loaded; default "default". */
  adapterName?: string;
}

export interface SavePretrainedOptions {
  /** Adapters to save; default all. "default" goes to `dir`, any other to `dir/<name>`. */
  selectedAdapters?: readonly string[];
  /**
   * PEFT's path_initial_model_for_weight_conversion: the folder this PiSSA / OLoRA adapter was saved to right after
   * initialisation. The adapter is then saved as a plain LoRA adapter of rank 2r on the original base weights
   * (weight-conversion.ts); the folder's adapter_config.json is rewritten with init_lora_weights true, as PEFT does.
   */
  pathInitialModelForWeightConversion?: string;
}

export interface AddWeightedAdapterOptions {
  /** Rank of the *svd combinations; default (also for 0, as PEFT's `svd_rank or max`) the largest source rank. */
  svdRank?: number;
  /** Quantile in [0, 1] of the SVD factors' values (torch.quantile) at which both factors are clamped; default none. */
  svdClamp?: number;
  /**
   * PEFT's svd_full_matrices (default true) and svd_driver (null, "gesvd", "gesvdj", "gesvda": which LAPACK/cuSOLVER
   * routine torch uses). Accepted for compatibility: after truncation to svdRank <= min(out, in) neither changes the
   * result, and every driver computes the same decomposition (here one-sided Jacobi in float64).
   */
  svdFullMatrices?: boolean;
  svdDriver?: SvdDriver | null;
  /** Fraction of values kept, in [0, 1] (>= 1 keeps all); required for ties, dare_* and magnitude_prune*. */
  density?: number;
  /** Sign election of ties / dare_ties: "total" (sum of values, default) or "frequency" (count of signs). */
  majoritySignMethod?: MajoritySignMethod;
  /**
   * DARE draws a Bernoulli(density) keep-mask per value (torch.bernoulli in PEFT, so PEFT's masks cannot be
   * reproduced); the masks come from this generator, or from `new Rng(seed)`; default seed 0.
   */
  rng?: Rng;
  seed?: number;
}

/** PEFT's LoraModel: holds the base model as `model`, so parameter names read base_model.model.<path>. */
export class LoraModel extends Module {
  constructor(readonly model: CausalLM) {
    super();
    this.registerModule('model', model);
  }
}

/**
 * A causal LM with LoRA adapters injected into it, behaving as PEFT's PeftModelForCausalLM: several named adapters,
 * one or more active, per-row adapters in a batch, save/load in PEFT's layout, merge/unmerge, mergeAndUnload.
 */
export class PeftModel extends Module {
  readonly base_model: LoraModel;
  private readonly configs = new Map<string, ResolvedLoraConfig>();
  /** Adapters in inference mode: frozen even while active. */
  private readonly frozen = new Set<string>();
  private readonly state: LoraRuntimeState;
  /** The 4-bit base of each LoRA layer whose adapters are merged into a re-quantized copy (mergeAdapter). */
  private readonly quantizedOriginals = new Map<LoraLinear, LinearLike>();
  private unloaded = false;

  private constructor(model: CausalLM, seed: number) {
    super();
    if ([...walkModules(model)].some((s) => isPeftLayer(s.module))) {
      throw new PeftError('This model already carries LoRA layers (another PeftModel wraps it); add adapters through that PeftModel with addAdapter or loadAdapter.');
    }
    model.requiresGrad_(false);
    this.base_model = this.registerModule('base_model', new LoraModel(model));
    this.state = { activeAdapters: [], adaptersDisabled: false, training: false, rng: new Rng(seed) };
  }

  /** The generator LoRA dropout draws its masks from; a trainer saves and restores its state with checkpoints. */
  get dropoutRng(): Rng {
    return this.state.rng;
  }

  /** PEFT's get_peft_model: a new trainable adapter, active. */
  static create(model: CausalLM, config: LoraConfig, adapterName = 'default'): PeftModel {
    const resolved = resolveLoraConfig(config);
    assertSyncInit(resolved);
    const peft = new PeftModel(model, resolved.seed);
    peft.addResolvedAdapter(adapterName, resolved);
    peft.setAdapter(adapterName, { inferenceMode: resolved.inferenceMode });
    return peft;
  }

  /**
   * create() for every initLoraWeights, including those that read and rewrite the base weights ("pissa",
   * "pissa_niter_N", "olora", "loftq"; see base-init.ts), which need awaiting.
   */
  static async createAsync(model: CausalLM, config: LoraConfig, adapterName = 'default'): Promise<PeftModel> {
    const resolved = resolveLoraConfig(config);
    const peft = new PeftModel(model, resolved.seed);
    await peft.addResolvedAdapterAsync(adapterName, resolved);
    peft.setAdapter(adapterName, { inferenceMode: resolved.inferenceMode });
    return peft;
  }

  /** PEFT's PeftModel.from_pretrained: loads an adapter folder (or Hub repo) onto the model and activates it. */
  static async fromPretrained(model: CausalLM, dirOrRepo: string, options: FromPretrainedOptions = {}): Promise<PeftModel> {
    // Wrapping freezes the base; a failed load gives the model back exactly as it came, trainable flags included.
    const trainable = [...model.namedParameters()].filter(([, t]) => t.requiresGrad).map(([, t]) => t);
    const peft = new PeftModel(model, 0);
    const name = options.adapterName ?? 'default';
    try {
      await peft.loadAdapter(dirOrRepo, name, options);
    } catch (err) {
      for (const t of trainable) t.requiresGrad = true;
      throw err;
    }
    peft.setAdapter(name, { inferenceMode: !options.isTrainable });
    return peft;
  }

  /** The base model, with the LoRA layers inside it. */
  get model(): CausalLM {
    return this.base_model.model;
  }
  getBaseModel(): CausalLM {
    return this.model;
  }

  /** Adapter configs by name, as they would be saved (target_modules resolved). */
  get peftConfig(): ReadonlyMap<string, ResolvedLoraConfig> {
    return this.configs;
  }
  get activeAdapters(): readonly string[] {
    return this.state.activeAdapters;
  }
  get activeAdapter(): string | undefined {
    return this.state.activeAdapters[0];
  }

  /** Training mode turns LoRA dropout on; PEFT models start in eval mode like transformers' from_pretrained. */
  train(on = true): this {
    this.state.training = on;
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  async forward(input: CausalLMInput): Promise<CausalLMOutput> {
    return this.run(input);
  }

  run(input: CausalLMInput): CausalLMOutput {
    this.assertUsable();
    if (input.adapterNames) this.assertRowAdapters(input.adapterNames);
    return this.model.run(input);
  }

  /** run()'s loss without the logits where the output projection allows it (CausalLM.runLoss). */
  runLoss(input: CausalLMInput & { labels: number[][] | Tensor }): Tensor {
    this.assertUsable();
    if (input.adapterNames) this.assertRowAdapters(input.adapterNames);
    return this.model.runLoss(input);
  }

  /** The base model's generate with the adapters in place; options.adapterNames selects an adapter per prompt. */
  async generate(promptIds: number[][], options: Record<string, unknown> & { adapterNames?: readonly string[] } = {}): Promise<number[][]> {
    this.assertUsable();
    if (options.adapterNames) this.assertRowAdapters(options.adapterNames);
    return this.model.generate(promptIds, options);
  }

  /** Trainable tensors keyed exactly as adapter_model.safetensors keys them; each gets .grad from backward(). */
  trainableParameters(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [name, config] of this.configs) {
      for (const entry of adapterStateEntries(this.model, name, config)) {
        const t = entryTensor(entry);
        if (!t.requiresGrad) continue;
        if (out.has(entry.key) && out.get(entry.key) !== t) {
          throw new PeftError(`Several trainable adapters save a tensor under ${entry.key}; train one adapter at a time (setAdapter) to list its parameters.`);
        }
        out.set(entry.key, t);
      }
    }
    return out;
  }

  /** PEFT's get_nb_trainable_parameters. */
  getNbTrainableParameters(): ParameterCounts {
    return countParameters(this);
  }

  /** Prints "trainable params: 1,234 || all params: 5,678 || trainable%: 21.7330" as PEFT does. */
  printTrainableParameters(): void {
    console.log(formatTrainableParameters(this.getNbTrainableParameters()));
  }

  /** A new adapter, neither active nor trainable until setAdapter selects it (PEFT's add_adapter). */
  addAdapter(name: string, config: LoraConfig): void {
    this.assertUsable();
    const resolved = resolveLoraConfig(config);
    assertSyncInit(resolved);
    this.addResolvedAdapter(name, resolved);
  }

  /** addAdapter for every initLoraWeights, including those that rewrite the base weights (PEFT warns against mixing those with other adapters). */
  async addAdapterAsync(name: string, config: LoraConfig): Promise<void> {
    this.assertUsable();
    await this.addResolvedAdapterAsync(name, resolveLoraConfig(config));
  }

  /** Loads a PEFT adapter folder (or Hub repo) under `name`; it is not activated (call setAdapter). */
  async loadAdapter(dirOrRepo: string, name: string, options: LoadAdapterOptions = {}): Promise<void> {
    this.assertUsable();
    this.assertNewName(name);
    const dir = await resolvePretrained(dirOrRepo, { files: [ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME], revision: options.revision, token: options.token, cacheDir: options.cacheDir });
    const config = { ...(await readAdapterConfig(dir)), inferenceMode: !options.isTrainable };
    const file = await openAdapterWeights(dir);
    const before = this.peftLayerSet();
    try {
      const configPath = join(dir, ADAPTER_CONFIG_NAME);
      try {
        this.inject(name, config, storedAdapterPlaceholders(file, configPath, this.model.device));
      } catch (err) {
        // Injection speaks of the config's fields (target_modules, ...); say which file they came from.
        if (err instanceof PeftError && !err.message.includes(dir)) throw new PeftError(`${configPath}: ${err.message}`);
        throw err;
      }
      try {
        // Every check runs before anything is rewritten: a failed load leaves the model as it was.
        const prepared = await prepareAdapterTensors(this.model, name, this.configs.get(name)!, file);
        try {
          // As PEFT's from_pretrained: the config's init runs first, so a PiSSA / OLoRA / LoftQ adapter rewrites the
          // base weights it is loaded onto (the original ones), then its saved A and B replace the initial ones.
          if (rewritesBase(config.initLoraWeights)) await initFromBase(loraLayers(this.model), name, config, new Rng(adapterSeed(config.seed, name)));
        } catch (err) {
          prepared.dispose();
          throw err;
        }
        prepared.install();
      } catch (err) {
        this.rollback(name, before);
        throw err;
      }
    } finally {
      await file.close();
    }
    if (options.dtype) this.castAdapter(name, options.dtype);
    if (!options.isTrainable) this.frozen.add(name);
    this.refreshTrainable();
  }

  /** Converts adapter `name`'s own tensors (not the base model's biases) to `dtype`, e.g. for serving. */
  castAdapter(name: string, dtype: DType): void {
    this.assertUsable();
    this.assertKnown(name);
    noGrad(() => {
      for (const e of adapterStateEntries(this.model, name, this.configs.get(name)!)) {
        const current = entryTensor(e);
        if (!e.ownedByAdapter || current.dtype === dtype) continue;
        const cast = to(current, { dtype }).keep();
        cast.requiresGrad = current.requiresGrad;
        current.dispose();
        e.owner.setParameter(e.param, cast);
      }
    });
  }

  /** Activates adapter(s); they become trainable unless inferenceMode (PEFT's set_adapter). Merged layers are unmerged first. */
  setAdapter(names: string | readonly string[], options: { inferenceMode?: boolean } = {}): void {
    this.assertUsable();
    const list = typeof names === 'string' ? [names] : [...names];
    for (const name of list) this.assertKnown(name);
    for (const { wrapper } of modulesToSaveWrappers(this.model)) {
      const copies = list.filter((n) => wrapper.hasAdapter(n));
      if (copies.length > 1) {
        throw new PeftError(`Adapters ${copies.map((n) => `"${n}"`).join(', ')} each train their own copy of ${wrapper.path} (modules_to_save), so they cannot be active at once; activate one of them.`);
      }
    }
    this.unmergeAdapter();
    this.state.activeAdapters = list;
    for (const name of list) {
      if (options.inferenceMode) this.frozen.add(name);
      else this.frozen.delete(name);
    }
    this.refreshTrainable();
  }

  /** Runs `fn` with every adapter switched off (the base model alone), unmerging first as PEFT does. */
  async disableAdapter<T>(fn: () => T | Promise<T>): Promise<T> {
    this.assertUsable();
    this.unmergeAdapter();
    const previous = this.state.adaptersDisabled;
    this.state.adaptersDisabled = true;
    // As PEFT's disable_adapter_layers: no adapter tensor requires grad inside; enabling again restores them.
    for (const [name, config] of this.configs) for (const e of adapterStateEntries(this.model, name, config)) entryTensor(e).requiresGrad = false;
    try {
      return await fn();
    } finally {
      this.state.adaptersDisabled = previous;
      if (!this.unloaded) this.refreshTrainable();
    }
  }

  /** Removes an adapter; if it was active, the first remaining adapter becomes active (PEFT's delete_adapter). */
  deleteAdapter(name: string): void {
    this.assertUsable();
    this.assertKnown(name);
    this.removeAdapter(name);
    if (this.state.activeAdapters.includes(name)) {
      const remaining = this.state.activeAdapters.filter((n) => n !== name);
      this.state.activeAdapters = remaining.length > 0 ? remaining : [...this.configs.keys()].slice(0, 1);
    }
    this.refreshTrainable();
  }

  /** Writes each adapter in PEFT's layout: "default" in `dir`, others in `dir/<name>`. */
  async savePretrained(dir: string, options: SavePretrainedOptions = {}): Promise<void> {
    this.assertUsable();
    const names = options.selectedAdapters ?? [...this.configs.keys()];
    for (const name of names) this.assertKnown(name);
    await mkdir(dir, { recursive: true });
    const cardConfig = this.configs.get(this.activeAdapter ?? names[0] ?? '');
    await writeModelCard(dir, { baseModel: cardConfig?.baseModelNameOrPath ?? '' });
    for (const name of names) {
      const config = this.configs.get(name)!;
      const tensors = new Map(adapterStateEntries(this.model, name, config).map((e) => [e.key, entryTensor(e)]));
      if (options.pathInitialModelForWeightConversion === undefined) {
        await writeAdapterFolder(adapterFolder(dir, name), tensors, config);
        continue;
      }
      const converted = await convertMutatedToLora(tensors, config, options.pathInitialModelForWeightConversion);
      try {
        await writeAdapterFolder(adapterFolder(dir, name), converted.tensors, converted.config);
      } finally {
        for (const t of converted.tensors.values()) t.dispose();
      }
    }
  }

  /**
   * Folds adapters (default: the active ones) into the base weights in place; forward then costs what the base costs.
   * Dense bases are merged before this returns (awaiting is needed only for the cases below). safeMerge (PEFT's
   * safe_merge): every merged weight is computed and checked for NaN/inf first, and a failure throws naming the
   * adapter and layer with no base weight changed. 4-bit bases (Linear4bit): per adapter, dequantized, the delta added
   * in float32, quantized to NF4 again with the same blocksize and double quantization (PEFT's bnb merge); unmerging
   * restores the original 4-bit weight.
   */
  mergeAdapter(adapterNames?: readonly string[], options: { safeMerge?: boolean } = {}): Promise<void> {
    this.assertUsable();
    const names = adapterNames ?? this.state.activeAdapters;
    for (const name of names) this.assertKnown(name);
    for (const { layer } of otherAdapterLayers(this.model)) if (layer instanceof LoraExperts) layer.assertMergeable();
    const layers = loraLayers(this.model);
    if (!options.safeMerge && !layers.some(({ layer }) => isRequantizing(layer.base_layer))) {
      for (const { layer } of layers) layer.merge(names);
      for (const { layer } of otherAdapterLayers(this.model)) layer.merge(names);
      return Promise.resolve();
    }
    return (async () => {
      if (options.safeMerge) for (const { layer } of layers) await assertFiniteMerge(layer, names);
      for (const { layer } of layers) {
        if (!isRequantizing(layer.base_layer)) layer.merge(names);
        else if (!this.quantizedOriginals.has(layer)) this.quantizedOriginals.set(layer, await mergeIntoQuantized(layer, names));
        else throw new PeftError(`${layer.path} already has adapters merged into its 4-bit weight; call unmergeAdapter() before merging again.`);
      }
      for (const { layer } of otherAdapterLayers(this.model)) layer.merge(names);
    })();
  }

  /** Undoes every merge, restoring the base weights. */
  unmergeAdapter(): void {
    for (const [layer, original] of this.quantizedOriginals) unmergeFromQuantized(layer, original);
    this.quantizedOriginals.clear();
    for (const { layer } of loraLayers(this.model)) if (layer.merged) layer.unmerge();
    for (const { layer } of otherAdapterLayers(this.model)) if (layer.merged) layer.unmerge();
  }

  /**
   * Merges adapters (default: the active ones) and returns the plain base model: LoRA layers replaced by their base
   * Linear, modules_to_save by the copy in use. This PeftModel cannot be used afterwards.
   */
  async mergeAndUnload(options: { adapterNames?: readonly string[]; safeMerge?: boolean } = {}): Promise<CausalLM> {
    this.assertUsable();
    await this.mergeAdapter(options.adapterNames, { safeMerge: options.safeMerge });
    return this.unloadLayers();
  }

  /** PEFT's unload: removes the LoRA layers without merging and returns the base model (as merged so far). */
  unload(): CausalLM {
    this.assertUsable();
    return this.unloadLayers();
  }

  private unloadLayers(): CausalLM {
    for (const original of this.quantizedOriginals.values()) (original as { weight4bit?: { dispose(): void } }).weight4bit?.dispose();
    this.quantizedOriginals.clear();
    for (const site of [...walkModules(this.model)]) if (isPeftLayer(site.module)) site.parent!.replaceChild(site.name, unwrapLayer(site.module));
    this.unloaded = true;
    return this.model;
  }

  /**
   * Exports the model with the active adapters merged as a Hugging Face checkpoint (weights, config.json, and the
   * tokenizer files of options.copyFilesFrom), leaving this PeftModel as it was. With options.safeMerge, merged
   * weights holding NaN or infinity are refused before anything is written (mergeAdapter's safeMerge).
   */
  async saveMergedPretrained(dir: string, options: SaveModelOptions & { safeMerge?: boolean } = {}): Promise<void> {
    this.assertUsable();
    const alreadyMerged = loraLayers(this.model).some(({ layer }) => layer.merged) || otherAdapterLayers(this.model).some(({ layer }) => layer.merged);
    if (!alreadyMerged) await this.mergeAdapter(undefined, { safeMerge: options.safeMerge });
    try {
      await saveModelPretrained(this.model, dir, options);
    } finally {
      if (!alreadyMerged) this.unmergeAdapter();
    }
  }

  /**
   * PEFT's add_weighted_adapter: a new adapter combining existing ones (see CombinationType; default "svd" as in
   * PEFT), added frozen and inactive. With one source adapter the combination is always linear, as in PEFT. Unlike
   * PEFT, an existing name is refused rather than silently ignored.
   */
  async addWeightedAdapter(adapters: readonly string[], weights: readonly number[], name: string, combinationType: CombinationType = 'svd', options: AddWeightedAdapterOptions = {}): Promise<void> {
    this.assertUsable();
    this.assertNewName(name);
    if (adapters.length === 0 || adapters.length !== weights.length) {
      throw new PeftError(`addWeightedAdapter needs one weight per adapter, got ${adapters.length} adapters and ${weights.length} weights.`);
    }
    for (const a of adapters) this.assertKnown(a);
    if (!isCombinationType(combinationType)) throw new PeftError(`Invalid combinationType "${String(combinationType)}"; use one of ${COMBINATION_TYPES.join(', ')}.`);
    const { density, svdClamp, svdRank, svdDriver } = options;
    const majoritySignMethod = options.majoritySignMethod ?? 'total';
    if (majoritySignMethod !== 'total' && majoritySignMethod !== 'frequency') throw new PeftError(`majoritySignMethod must be "total" or "frequency", got "${String(majoritySignMethod)}".`);
    if (svdRank !== undefined && !(Number.isInteger(svdRank) && svdRank >= 0)) throw new PeftError(`svdRank must be a positive integer, got ${svdRank}.`);
    if (svdClamp !== undefined && !(svdClamp >= 0 && svdClamp <= 1)) throw new PeftError(`svdClamp is a quantile and must be in the range [0, 1], but got ${svdClamp}.`);
    if (svdDriver != null && !(SVD_DRIVERS as readonly string[]).includes(svdDriver)) throw new PeftError(`svdDriver must be null or one of ${SVD_DRIVERS.join(', ')}, got "${String(svdDriver)}".`);
    const sources = adapters.map((a) => this.configs.get(a)!);
    for (const [i, c] of sources.entries()) {
      const mine = c.modulesToSave ?? [];
      if (sources.some((o, j) => j !== i && (o.modulesToSave ?? []).some((m) => mine.includes(m)))) {
        throw new PeftError('Cannot add weighted adapters if they target the same module with modules_to_save; combine adapters whose modules_to_save differ.');
      }
    }
    const { config, type } = weightedAdapterConfig(sources, combinationType, svdRank);
    if (needsDensity(type) && (density === undefined || Number.isNaN(density))) throw new PeftError(`combinationType "${type}" prunes values and needs a density in [0, 1].`);
    if (density !== undefined && density < 0) throw new PeftError(`Density should be >= 0, got ${density}.`);
    const rng = isDare(type) ? (options.rng ?? new Rng(options.seed ?? 0)) : undefined;
    const before = this.peftLayerSet();
    this.inject(name, config, zeroWeights(this.model.device, { magnitude: false }));
    try {
      for (const { layer } of loraLayers(this.model)) {
        if (layer.hasAdapter(name)) await fillWeightedAdapter(layer, name, adapters, weights, { type, rank: config.r, density, majoritySignMethod, svdClamp, rng });
      }
    } catch (err) {
      this.rollback(name, before);
      throw err;
    }
    this.frozen.add(name);
    this.refreshTrainable();
  }

  private addResolvedAdapter(name: string, config: ResolvedLoraConfig): void {
    this.assertNewName(name);
    const before = this.peftLayerSet();
    this.inject(name, config, initialWeights(config.initLoraWeights, new Rng(adapterSeed(config.seed, name)), this.model.device));
    if (config.initLoraWeights === 'orthogonal') {
      try {
        initOrthogonal(loraLayers(this.model), name, new Rng(adapterSeed(config.seed, name)));
      } catch (err) {
        this.rollback(name, before);
        throw err;
      }
    }
    this.refreshTrainable();
  }

  /** addResolvedAdapter, then the base-rewriting init (base-init.ts) where the config asks for one. */
  private async addResolvedAdapterAsync(name: string, config: ResolvedLoraConfig): Promise<void> {
    const before = this.peftLayerSet();
    this.addResolvedAdapter(name, config);
    if (!rewritesBase(config.initLoraWeights)) return;
    try {
      await initFromBase(loraLayers(this.model), name, config, new Rng(adapterSeed(config.seed, name)));
    } catch (err) {
      this.rollback(name, before);
      throw err;
    }
    this.refreshTrainable();
  }

  private inject(name: string, config: ResolvedLoraConfig, weights: AdapterWeightsFactory): void {
    // PEFT's BaseTuner._check_new_adapter_config: at most one adapter may train biases.
    const withBias = [...this.configs].filter(([n, c]) => n !== name && c.bias !== 'none').map(([n]) => n);
    if (config.bias !== 'none' && withBias.length > 0) {
      throw new PeftError(`Adapter "${name}" sets bias "${config.bias}" but adapter "${withBias[0]}" already trains biases; LoRA supports only one adapter with bias, so set bias "none" for all but one.`);
    }
    const before = this.peftLayerSet();
    try {
      this.configs.set(name, injectAdapter(this.model, name, config, this.state, weights));
    } catch (err) {
      this.rollback(name, before);
      throw err;
    }
  }

  /** The LoRA layers and wrappers in the model now, so that `rollback` can tell which ones an adapter added. */
  private peftLayerSet(): ReadonlySet<Module> {
    return new Set([...walkModules(this.model)].filter((s) => isPeftLayer(s.module)).map((s) => s.module));
  }

  /**
   * Undoes a failed add or load of adapter `name`: its tensors are freed, and the layers wrapped for it (absent from
   * `before`) get their base layers back, so the model is as it was and the next adapter loads onto it.
   */
  private rollback(name: string, before: ReadonlySet<Module>): void {
    this.removeAdapter(name);
    for (const site of [...walkModules(this.model)]) {
      if (isPeftLayer(site.module) && !before.has(site.module)) site.parent!.replaceChild(site.name, unwrapLayer(site.module));
    }
    this.refreshTrainable();
  }

  private removeAdapter(name: string): void {
    for (const { layer } of loraLayers(this.model)) if (layer.hasAdapter(name)) layer.deleteAdapter(name);
    for (const { wrapper } of modulesToSaveWrappers(this.model)) wrapper.deleteAdapter(name);
    for (const { layer } of otherAdapterLayers(this.model)) if (layer.hasAdapter(name)) layer.deleteAdapter(name);
    this.configs.delete(name);
    this.frozen.delete(name);
  }

  /** Only the active adapters that are not in inference mode train; every other adapter tensor is frozen. */
  private refreshTrainable(): void {
    for (const [name, config] of this.configs) for (const e of adapterStateEntries(this.model, name, config)) entryTensor(e).requiresGrad = false;
    for (const name of this.state.activeAdapters) {
      const config = this.configs.get(name);
      if (!config || this.frozen.has(name)) continue;
      for (const e of adapterStateEntries(this.model, name, config)) if (!e.savedOnly) entryTensor(e).requiresGrad = true;
    }
  }

  private assertUsable(): void {
    if (this.unloaded) throw new PeftError('This PeftModel was unloaded by mergeAndUnload(); use the model that call returned.');
  }

  private assertKnown(name: string): void {
    if (!this.configs.has(name)) throw new PeftError(`No adapter named "${name}" is loaded; loaded adapters: ${this.loadedNames()}.`);
  }

  private assertNewName(name: string): void {
    if (name === BASE_ADAPTER_NAME) throw new PeftError(`"${BASE_ADAPTER_NAME}" is reserved for the base model in per-row adapter names; choose another adapter name.`);
    if (this.configs.has(name)) throw new PeftError(`An adapter named "${name}" is already loaded; choose another name or deleteAdapter("${name}") first.`);
  }

  private assertRowAdapters(names: readonly string[]): void {
    for (const name of names) {
      if (name !== BASE_ADAPTER_NAME && !this.configs.has(name)) {
        throw new PeftError(`adapterNames names "${name}", which is not loaded; use one of ${this.loadedNames()} or "${BASE_ADAPTER_NAME}" for the base model.`);
      }
    }
  }

  private loadedNames(): string {
    return this.configs.size > 0 ? [...this.configs.keys()].map((n) => `"${n}"`).join(', ') : 'none';
  }
}

/** The layer a LoRA layer or wrapper stands in for, with its adapters dropped (merged ones stay folded in). */
function unwrapLayer(m: LoraLinear | LoraEmbedding | TrainableTokensWrapper | ModulesToSaveWrapper | LoraExperts): Module {
  return m instanceof ModulesToSaveWrapper ? m.layerInUse() : m.unload();
}

/**
 * The seed an adapter's initial weights are drawn from: the config's seed for "default" (so a single adapter draws
 * what it always drew), mixed with a hash of the name otherwise, so adapters made from one config differ.
 */
export function adapterSeed(seed: number, name: string): number {
  if (name === 'default') return seed >>> 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return (Math.imul(seed >>> 0, 0x9e3779b1) ^ h) >>> 0;
}

/** The initialisations that read the base weights cannot run synchronously; say which call to use instead. */
function assertSyncInit(config: ResolvedLoraConfig): void {
  if (rewritesBase(config.initLoraWeights)) {
    throw new PeftError(
      `initLoraWeights ${JSON.stringify(config.initLoraWeights)} reads and rewrites the base weights, which is asynchronous here; use \`await getPeftModelAsync(model, config)\` (or \`await peft.addAdapterAsync(name, config)\`).`,
    );
  }
}

/** getPeftModel for every initLoraWeights, including "pissa", "pissa_niter_N", "olora" and "loftq". */
export function getPeftModelAsync(model: CausalLM, config: LoraConfig, adapterName = 'default'): Promise<PeftModel> {
  return PeftModel.createAsync(model, config, adapterName);
}

/** PEFT's get_peft_model: injects a new trainable adapter (active) into the model and returns the PeftModel. */
export function getPeftModel(model: CausalLM, config: LoraConfig, adapterName = 'default'): PeftModel {
  return PeftModel.create(model, config, adapterName);
}
