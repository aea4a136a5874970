import { resolvePretrained } from '../io/hub.js';
import type { CausalLMInput, CausalLMOutput, CausalLM } from '../models/causal-lm.js';
import { Module } from '../nn/module.js';
import { to } from '../ops/index.js';
import type { DType } from '../tensor/dtype.js';
import { noGrad } from '../tensor/grad-mode.js';
import { Rng } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { adapterFolder, ADAPTER_WEIGHTS_NAME, openAdapterWeights, writeAdapterFolder } from './adapter-files.js';
import { loadAdapterTensors } from './adapter-load.js';
import { adapterStateEntries, entryTensor } from './adapter-state.js';
import { initialWeights, zeroWeights, type AdapterWeightsFactory } from './adapter-weights.js';
import { resolveLoraConfig, type LoraConfig, type ResolvedLoraConfig } from './config.js';
import { ADAPTER_CONFIG_NAME, readAdapterConfig } from './config-json.js';
import { PeftError } from './errors.js';
import { saveModelPretrained, type SaveModelOptions } from './export-checkpoint.js';
import { injectAdapter } from './inject.js';
import { LoraLinear } from './lora-linear.js';
import { loraLayers, modulesToSaveWrappers, walkModules } from './module-walk.js';
import { ModulesToSaveWrapper } from './modules-to-save.js';
import { BASE_ADAPTER_NAME, type LoraRuntimeState } from './runtime-state.js';
import { countParameters, formatTrainableParameters, type ParameterCounts } from './trainable.js';
import { fillWeightedAdapter, weightedAdapterConfig, type CombinationType } from './weighted-adapter.js';

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
}

export interface AddWeightedAdapterOptions {
  /** Rank of an svd combination; default the largest source rank. */
  svdRank?: number;
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
  private unloaded = false;

  private constructor(model: CausalLM, seed: number) {
    super();
    if ([...walkModules(model)].some((s) => s.module instanceof LoraLinear || s.module instanceof ModulesToSaveWrapper)) {
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
    const peft = new PeftModel(model, resolved.seed);
    peft.addResolvedAdapter(adapterName, resolved);
    peft.setAdapter(adapterName, { inferenceMode: resolved.inferenceMode });
    return peft;
  }

  /** PEFT's PeftModel.from_pretrained: loads an adapter folder (or Hub repo) onto the model and activates it. */
  static async fromPretrained(model: CausalLM, dirOrRepo: string, options: FromPretrainedOptions = {}): Promise<PeftModel> {
    const peft = new PeftModel(model, 0);
    const name = options.adapterName ?? 'default';
    await peft.loadAdapter(dirOrRepo, name, options);
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
    this.addResolvedAdapter(name, resolveLoraConfig(config));
  }

  /** Loads a PEFT adapter folder (or Hub repo) under `name`; it is not activated (call setAdapter). */
  async loadAdapter(dirOrRepo: string, name: string, options: LoadAdapterOptions = {}): Promise<void> {
    this.assertUsable();
    this.assertNewName(name);
    const dir = await resolvePretrained(dirOrRepo, { files: [ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME], revision: options.revision, token: options.token, cacheDir: options.cacheDir });
    const config = { ...(await readAdapterConfig(dir)), inferenceMode: !options.isTrainable };
    const file = await openAdapterWeights(dir);
    try {
      this.inject(name, config, zeroWeights(this.model.device, { magnitude: true }));
      try {
        await loadAdapterTensors(this.model, name, this.configs.get(name)!, file);
      } catch (err) {
        this.removeAdapter(name);
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
    try {
      return await fn();
    } finally {
      this.state.adaptersDisabled = previous;
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
    for (const name of names) {
      const config = this.configs.get(name)!;
      const tensors = new Map(adapterStateEntries(this.model, name, config).map((e) => [e.key, entryTensor(e)]));
      await writeAdapterFolder(adapterFolder(dir, name), tensors, config);
    }
  }

  /** Folds adapters (default: the active ones) into the base weights in place; forward then costs what the base costs. */
  mergeAdapter(adapterNames?: readonly string[]): void {
    this.assertUsable();
    const names = adapterNames ?? this.state.activeAdapters;
    for (const name of names) this.assertKnown(name);
    for (const { layer } of loraLayers(this.model)) layer.merge(names);
  }

  /** Undoes every merge, restoring the base weights. */
  unmergeAdapter(): void {
    for (const { layer } of loraLayers(this.model)) if (layer.merged) layer.unmerge();
  }

  /**
   * Merges adapters (default: the active ones) and returns the plain base model: LoRA layers replaced by their base
   * Linear, modules_to_save by the copy in use. This PeftModel cannot be used afterwards.
   */
  async mergeAndUnload(options: { adapterNames?: readonly string[] } = {}): Promise<CausalLM> {
    this.assertUsable();
    this.mergeAdapter(options.adapterNames);
    for (const site of [...walkModules(this.model)]) {
      if (site.module instanceof LoraLinear) site.parent!.replaceChild(site.name, site.module.unload());
      else if (site.module instanceof ModulesToSaveWrapper) site.parent!.replaceChild(site.name, site.module.layerInUse());
    }
    this.unloaded = true;
    return this.model;
  }

  /**
   * Exports the model with the active adapters merged as a Hugging Face checkpoint (weights, config.json, and the
   * tokenizer files of options.copyFilesFrom), leaving this PeftModel as it was.
   */
  async saveMergedPretrained(dir: string, options: SaveModelOptions = {}): Promise<void> {
    this.assertUsable();
    const alreadyMerged = loraLayers(this.model).some(({ layer }) => layer.merged);
    if (!alreadyMerged) this.mergeAdapter();
    try {
      await saveModelPretrained(this.model, dir, options);
    } finally {
      if (!alreadyMerged) this.unmergeAdapter();
    }
  }

  /**
   * PEFT's add_weighted_adapter: a new adapter combining existing ones (see CombinationType), added frozen and
   * inactive. With one source adapter the combination is always linear, as in PEFT.
   */
  async addWeightedAdapter(adapters: readonly string[], weights: readonly number[], name: string, combinationType: CombinationType, options: AddWeightedAdapterOptions = {}): Promise<void> {
    this.assertUsable();
    this.assertNewName(name);
    if (adapters.length === 0 || adapters.length !== weights.length) {
      throw new PeftError(`addWeightedAdapter needs one weight per adapter, got ${adapters.length} adapters and ${weights.length} weights.`);
    }
    for (const a of adapters) this.assertKnown(a);
    const combination = adapters.length === 1 ? 'linear' : combinationType;
    const config = weightedAdapterConfig(adapters.map((a) => this.configs.get(a)!), combination, options.svdRank);
    this.inject(name, config, zeroWeights(this.model.device, { magnitude: false }));
    try {
      for (const { layer } of loraLayers(this.model)) if (layer.hasAdapter(name)) await fillWeightedAdapter(layer, name, adapters, weights, combination);
    } catch (err) {
      this.removeAdapter(name);
      throw err;
    }
    this.refreshTrainable();
  }

  private addResolvedAdapter(name: string, config: ResolvedLoraConfig): void {
    this.assertNewName(name);
    this.inject(name, config, initialWeights(config.initLoraWeights, new Rng(config.seed), this.model.device));
    this.refreshTrainable();
  }

  private inject(name: string, config: ResolvedLoraConfig, weights: AdapterWeightsFactory): void {
    try {
      this.configs.set(name, injectAdapter(this.model, name, config, this.state, weights));
    } catch (err) {
      this.removeAdapter(name);
      throw err;
    }
  }

  private removeAdapter(name: string): void {
    for (const { layer } of loraLayers(this.model)) if (layer.hasAdapter(name)) layer.deleteAdapter(name);
    for (const { wrapper } of modulesToSaveWrappers(this.model)) wrapper.deleteAdapter(name);
    this.configs.delete(name);
    this.frozen.delete(name);
  }

  /** Only the active adapters that are not in inference mode train; every other adapter tensor is frozen. */
  private refreshTrainable(): void {
    for (const [name, config] of this.configs) for (const e of adapterStateEntries(this.model, name, config)) entryTensor(e).requiresGrad = false;
    for (const name of this.state.activeAdapters) {
      const config = this.configs.get(name);
      if (!config || this.frozen.has(name)) continue;
      for (const e of adapterStateEntries(this.model, name, config)) entryTensor(e).requiresGrad = true;
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

/** PEFT's get_peft_model: injects a new trainable adapter (active) into the model and returns the PeftModel. */
export function getPeftModel(model: CausalLM, config: LoraConfig, adapterName = 'default'): PeftModel {
  return PeftModel.create(model, config, adapterName);
}
