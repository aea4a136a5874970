import { compareCodePoints } from '../io/code-point-order.js';
import type { LinearLike, Module } from '../nn/module.js';
import type { ResolvedLoraConfig } from './config.js';
import { PeftError } from './errors.js';
import { isCopyableLayer, ModulesToSaveWrapper } from './modules-to-save.js';
import { walkModules, type ModuleSite } from './module-walk.js';
import { Embedding } from '../nn/layers.js';
import { LoraEmbedding } from './lora-embedding.js';
import { TrainableTokensWrapper } from './trainable-tokens.js';
import { MoeExperts } from '../models/moe.js';
import { EXPERT_PARAMETERS, LoraExperts, type ExpertParameter } from './lora-experts.js';

const ALL_LINEAR = 'all-linear';

/** PEFT condenses target lists at least this long to the shortest distinguishing suffixes. */
const MIN_TARGET_MODULES_FOR_OPTIMIZATION = 20;

/**
 * PEFT's target_modules when a config gives none (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING, PEFT 0.21);
 * PEFT has none for phi3, smollm3, olmo2, qwen3_moe and gpt_oss, and refuses a config without target_modules there, as this does.
 */
const DEFAULT_TARGETS: Readonly<Record<string, readonly string[]>> = {
  llama: ['q_proj', 'v_proj'],
  mistral: ['q_proj', 'v_proj'],
  mixtral: ['q_proj', 'v_proj'],
  qwen2: ['q_proj', 'v_proj'],
  qwen3: ['q_proj', 'v_proj'],
  gemma2: ['q_proj', 'v_proj'],
  gemma3_text: ['q_proj', 'v_proj'],
};

/** The base model as target matching sees it: its module tree, model_type and output head. */
export interface TargetModel extends Module {
  readonly config: { readonly modelType: string };
  readonly lm_head: LinearLike | null;
}

export interface TargetPlan {
  /** The config with target_modules as PEFT stores them: defaults filled in, "all-linear" expanded. */
  readonly config: ResolvedLoraConfig;
  /** Linear layers (or LoRA layers already wrapping one) that get the adapter. */
  readonly loraSites: readonly ModuleSite[];
  /** Layers that get a trainable copy (modules_to_save). */
  readonly saveSites: readonly ModuleSite[];
  /** Embedding layers (or LoRA embeddings) that get the adapter as PEFT's lora.Embedding. */
  readonly embeddingSites: readonly ModuleSite[];
  /** Embedding layers whose rows `indices` train (trainable_token_indices). */
  readonly tokenSites: readonly { readonly site: ModuleSite; readonly indices: readonly number[] }[];
  /** Names of a target_modules list that match no module (PEFT adapts the others without a word). */
  readonly unmatchedTargets: readonly string[];
  /** Mixture-of-experts layers whose parameters target_parameters names (MoeExperts, or LoraExperts already wrapping one). */
  readonly expertSites: readonly { readonly site: ModuleSite; readonly parameters: readonly ExpertParameter[] }[];
}

/** The names of a target_modules list that match no module path (as the whole path or its last components). */
export function unmatchedTargetNames(paths: readonly string[], targets: ResolvedLoraConfig['targetModules']): string[] {
  if (targets === null || typeof targets === 'string') return [];
  return [...new Set(targets)].filter((t) => !paths.some((p) => p === t || p.endsWith(`.${t}`)));
}

/** Linear layers, their 4-bit variants and LoRA layers wrapping either (anything mapping [..., in] to [..., out]). */
export function isLinearLike(m: Module): m is LinearLike {
  if (m instanceof ModulesToSaveWrapper) return false;
  return 'inFeatures' in m && typeof m.inFeatures === 'number' && 'outFeatures' in m && typeof m.outFeatures === 'number' && 'forward' in m;
}

/** Which modules an adapter config touches, checked the way PEFT's inject_adapter checks them. */
export function planTargets(model: TargetModel, config: ResolvedLoraConfig): TargetPlan {
  const sites = [...walkModules(model)].filter((s) => s.path !== '');
  const resolved = { ...config, targetModules: resolveTargetModules(model, config, sites) };
  const loraSites: ModuleSite[] = [];
  const embeddingSites: ModuleSite[] = [];
  for (const site of sites) {
    if (!matchesTarget(resolved, site.path)) continue;
    if (site.module instanceof ModulesToSaveWrapper) {
      throw new PeftError(`target_modules matched ${site.path}, which another adapter trains in full (modules_to_save); LoRA cannot adapt it as well, so leave it out of target_modules.`);
    }
    if (site.module instanceof TrainableTokensWrapper) {
      throw new PeftError(`target_modules matched ${site.path}, whose tokens another adapter trains (trainable_token_indices); LoRA cannot adapt it as well, so leave it out of target_modules.`);
    }
    if (site.module instanceof Embedding || site.module instanceof LoraEmbedding) {
      embeddingSites.push(site);
      continue;
    }
    if (!isLinearLike(site.module)) {
      throw new PeftError(
        `target_modules matched ${site.path} (${site.module.constructor.name}), which is not a linear layer; LoRA adapts linear layers only, so name those instead (e.g. ${exampleLinear(sites)}).`,
      );
    }
    loraSites.push(site);
  }
  const expertSites = expertParameterSites(config, sites);
  if (loraSites.length === 0 && embeddingSites.length === 0 && expertSites.length === 0) throw new PeftError(noMatchMessage(resolved, sites));
  const tokenSites = trainableTokenSites(resolved, sites, embeddingSites);
  const unmatchedTargets = unmatchedTargetNames(sites.map((s) => s.path), config.targetModules);
  return { config: resolved, loraSites, saveSites: modulesToSaveSites(resolved, sites), embeddingSites, tokenSites, unmatchedTargets, expertSites };
}

/**
 * PEFT's _inject_parameters: a parameter is targeted when "<module path>.<name>" is a target_parameters entry or
 * ends with "." + one. Only MoeExperts' gate_up_proj and down_proj can be; a name that matches nothing, or
 * matches another parameter, is refused.
 */
function expertParameterSites(config: ResolvedLoraConfig, sites: readonly ModuleSite[]): TargetPlan['expertSites'] {
  const names = config.targetParameters ?? [];
  if (names.length === 0) return [];
  const matches = (key: string) => names.some((t) => key === t || key.endsWith(`.${t}`));
  const out: { site: ModuleSite; parameters: ExpertParameter[] }[] = [];
  for (const site of sites) {
    const experts = site.module instanceof LoraExperts ? site.module.base_layer : site.module;
    const own = experts.ownParameterNames().filter((p) => matches(`${site.path}.${p}`));
    if (own.length === 0) continue;
    const unsupported = own.find((p) => !(experts instanceof MoeExperts) || !(EXPERT_PARAMETERS as readonly string[]).includes(p));
    if (unsupported !== undefined) {
      throw new PeftError(`target_parameters matched ${site.path}.${unsupported}, but loraforge adapts only the experts.gate_up_proj and experts.down_proj parameters of a mixture-of-experts layer; target those.`);
    }
    out.push({ site, parameters: own as ExpertParameter[] });
  }
  if (out.length === 0) throw new PeftError(`target_parameters ${JSON.stringify(names)} match no parameter of the base model; a mixture-of-experts model's are experts.gate_up_proj and experts.down_proj.`);
  return out;
}

function resolveTargetModules(model: TargetModel, config: ResolvedLoraConfig, sites: readonly ModuleSite[]): ResolvedLoraConfig['targetModules'] {
  const targets = config.targetModules;
  // PEFT: target_parameters without target_modules adapts those parameters only (no default target_modules).
  if (targets === null && (config.targetParameters ?? []).length > 0) return null;
  if (targets === null) {
    const defaults = DEFAULT_TARGETS[model.config.modelType];
    if (!defaults) throw new PeftError(`There is no default target_modules for model type "${model.config.modelType}"; pass targetModules (e.g. ["q_proj", "v_proj"]).`);
    return defaults;
  }
  if (typeof targets !== 'string') return condenseTargets(targets, sites);
  if (targets.toLowerCase() !== ALL_LINEAR) return targets;
  // "all-linear": every linear layer except the output head, as full paths (PEFT excludes get_output_embeddings()).
  const linear = sites.filter((s) => isLinearLike(s.module) && s.module !== model.lm_head).map((s) => s.path);
  if (linear.length < MIN_TARGET_MODULES_FOR_OPTIMIZATION) return linear;
  const targetSet = new Set(linear);
  const others = sites.map((s) => s.path).filter((p) => !targetSet.has(p));
  return minimalSuffixes(linear, others);
}

/**
 * PEFT's inject_adapter optimisation: a list of at least MIN_TARGET_MODULES_FOR_OPTIMIZATION names is replaced by its
 * minimal suffixes when those are fewer, so the saved config carries the condensed list as PEFT's does.
 */
function condenseTargets(targets: readonly string[], sites: readonly ModuleSite[]): readonly string[] {
  const unique = [...new Set(targets)];
  if (unique.length < MIN_TARGET_MODULES_FOR_OPTIMIZATION) return targets;
  const others = ['', ...sites.map((s) => s.path)].filter((p) => !unique.includes(p) && !unique.some((t) => p.endsWith(`.${t}`)));
  const condensed = minimalSuffixes(unique, others);
  return condensed.length < unique.length ? condensed : targets;
}

/** PEFT's _find_minimal_target_modules: the fewest path suffixes that pick out the targets and none of the others. */
export function minimalSuffixes(targets: readonly string[], others: readonly string[]): string[] {
  const suffixesOf = (path: string) => {
    const parts = path.split('.');
    return parts.map((_, i) => parts.slice(parts.length - 1 - i).join('.'));
  };
  const otherSuffixes = new Set(others.flatMap(suffixesOf));
  const required = new Set<string>();
  const items = targets.map((t) => ({ path: t, suffixes: suffixesOf(t) })).sort((a, b) => compareLists(a.suffixes, b.suffixes));
  for (const { path, suffixes } of items) {
    for (const suffix of suffixes) {
      if (required.has(suffix) || otherSuffixes.has(suffix)) continue;
      if (![...required].some((r) => path.endsWith(`.${r}`))) {
        required.add(suffix);
        break;
      }
    }
  }
  return required.size > 0 ? [...required] : [...targets];
}

function compareLists(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const d = compareCodePoints(a[i]!, b[i]!);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** PEFT's check_target_module_exists for one module path. */
export function matchesTarget(config: ResolvedLoraConfig, path: string): boolean {
  const exclude = config.excludeModules;
  if (exclude !== null) {
    if (typeof exclude === 'string' ? fullMatch(exclude, path) : exclude.some((e) => path === e || path.endsWith(`.${e}`))) return false;
  }
  // Adapters never target a module that modules_to_save copies.
  if (config.modulesToSave?.some((m) => pythonRegex(`(^|.*\\.)${m}($|\\..*)`, '').test(path))) return false;
  const targets = config.targetModules;
  if (targets === null) return false;
  if (typeof targets === 'string') return fullMatch(targets, path);
  if (targets.includes(path)) return true;
  if (!targets.some((t) => path.endsWith(`.${t}`))) return false;
  return inTransformedLayers(config, path);
}

/** layers_to_transform: the layer index is the number after the layers container ("model.layers.3.mlp" -> 3). */
function inTransformedLayers(config: ResolvedLoraConfig, path: string): boolean {
  const wanted = config.layersToTransform;
  if (wanted === null || (Array.isArray(wanted) && wanted.length === 0)) return true;
  const patterns = config.layersPattern === null || config.layersPattern.length === 0 ? null : typeof config.layersPattern === 'string' ? [config.layersPattern] : config.layersPattern;
  let index: number | null = null;
  for (const pattern of patterns ?? ['[^.]*']) {
    const m = pythonRegex(`.*?\\.${pattern}\\.(\\d+)\\.`, '').exec(path);
    if (m) {
      index = Number(m[1]);
      break;
    }
  }
  if (index === null) return false;
  return typeof wanted === 'number' ? index === wanted : (wanted as readonly number[]).includes(index);
}

/** PEFT's get_pattern_key: the first rank_pattern / alpha_pattern key that matches the end of the path. */
export function patternValue(pattern: Readonly<Record<string, number>>, path: string, fallback: number): number {
  for (const [key, value] of Object.entries(pattern)) {
    if (pythonRegex(`(.*\\.)?(${key})$`, '').test(path)) return value;
  }
  return fallback;
}

function fullMatch(pattern: string, path: string): boolean {
  return pythonRegex(`(?:${pattern})$`, '').test(path);
}

/**
 * A Python `re` pattern as a JavaScript RegExp anchored at the start (re.match). Python's named-group syntax is
 * translated; everything else in the common subset means the same in both.
 */
function pythonRegex(pattern: string, flags: string): RegExp {
  const js = pattern.replace(/\(\?P</g, '(?<').replace(/\(\?P=(\w+)\)/g, '\\k<$1>');
  try {
    return new RegExp(`^(?:${js})`, flags);
  } catch (err) {
    throw new PeftError(`The module pattern ${JSON.stringify(pattern)} is not a valid regular expression (${(err as Error).message}); fix target_modules, rank_pattern or alpha_pattern.`);
  }
}

function modulesToSaveSites(config: ResolvedLoraConfig, sites: readonly ModuleSite[]): ModuleSite[] {
  const names = config.modulesToSave ?? [];
  const found: ModuleSite[] = [];
  for (const name of names) {
    // PEFT's _set_trainable: a plain suffix test on the module path.
    const matched = sites.filter((s) => s.path.endsWith(name));
    if (matched.length === 0) throw new PeftError(`modules_to_save names "${name}", but the base model has no such module; modules it has: ${leafNames(sites)}.`);
    for (const site of matched) {
      if (!isCopyableLayer(site.module) && !(site.module instanceof ModulesToSaveWrapper)) {
        throw new PeftError(`modules_to_save matched ${site.path} (${site.module.constructor.name}); only Linear, Embedding and RMSNorm layers can be copied, so name one of those.`);
      }
      if (!found.includes(site)) found.push(site);
    }
  }
  return found;
}

/**
 * PEFT's set_additional_trainable_modules for trainable_token_indices: a list applies to the input embedding, an
 * object to the layers it names (suffix match, strict: a name matching nothing is an error).
 */
function trainableTokenSites(config: ResolvedLoraConfig, sites: readonly ModuleSite[], embeddingSites: readonly ModuleSite[]): TargetPlan['tokenSites'] {
  const spec = config.trainableTokenIndices;
  if (spec === null) return [];
  const isEmbedding = (m: Module) => m instanceof Embedding || m instanceof TrainableTokensWrapper || m instanceof LoraEmbedding;
  let targets: [string, readonly number[]][];
  if (Array.isArray(spec)) {
    const input = sites.find((s) => s.name === 'embed_tokens' && isEmbedding(s.module)) ?? sites.find((s) => isEmbedding(s.module));
    if (!input) throw new PeftError('trainable_token_indices needs an input embedding, but the base model has none; leave trainable_token_indices out.');
    targets = [[input.path, spec as readonly number[]]];
  } else {
    targets = Object.entries(spec as Readonly<Record<string, readonly number[]>>);
  }
  const out: { site: ModuleSite; indices: readonly number[] }[] = [];
  for (const [name, indices] of targets) {
    if (config.modulesToSave?.includes(name) || (config.modulesToSave ?? []).some((m) => name.endsWith(m))) {
      throw new PeftError(`The embedding layer is already marked to be trained fully, either specify \`modules_to_save=[..., "${name}", ...]\` or \`trainable_tokens={'${name}': x}\` but not both.`);
    }
    const matched = sites.filter((s) => s.path.endsWith(name));
    if (matched.length === 0) throw new PeftError(`trainable_token_indices names "${name}", but the base model has no such module; name its input embedding (e.g. ${sites.find((s) => isEmbedding(s.module))?.path ?? 'embed_tokens'}).`);
    for (const site of matched) {
      if (embeddingSites.includes(site) || site.module instanceof LoraEmbedding) {
        throw new PeftError(`trainable_token_indices cannot be applied to ${site.path}, which target_modules adapts with LoRA (lora.Embedding); train its tokens or adapt it with LoRA, not both.`);
      }
      if (!(site.module instanceof Embedding || site.module instanceof TrainableTokensWrapper)) {
        throw new PeftError(`trainable_token_indices cannot be applied to ${site.path} (${site.module.constructor.name}), which is not an embedding layer; name an Embedding.`);
      }
      out.push({ site, indices });
    }
  }
  return out;
}

function noMatchMessage(config: ResolvedLoraConfig, sites: readonly ModuleSite[]): string {
  const saved = sites.filter((s) => !matchesTarget(config, s.path) && matchesTarget({ ...config, modulesToSave: null }, s.path));
  if (saved.length > 0) {
    return `No modules were targeted for adaptation: target_modules ${JSON.stringify(config.targetModules)} match only ${saved.map((s) => s.path).join(', ')}, which modules_to_save trains in full, so target other modules or drop those from modules_to_save.`;
  }
  const layers = config.layersToTransform !== null ? ` in layers ${JSON.stringify(config.layersToTransform)}` : '';
  const regexHint = typeof config.targetModules === 'string' ? ', and a string is a regex that must match the whole path (pass a list to match name suffixes)' : '';
  return `target_modules ${JSON.stringify(config.targetModules)} match no module of the base model${layers}; its linear modules are ${leafNames(sites.filter((s) => isLinearLike(s.module)))} (e.g. ${exampleLinear(sites)})${regexHint}.`;
}

/** Distinct module names, without list indices ("0", "1"). */
function leafNames(sites: readonly ModuleSite[]): string {
  return [...new Set(sites.map((s) => s.name).filter((n) => !/^\d+$/.test(n)))].join(', ');
}

function exampleLinear(sites: readonly ModuleSite[]): string {
  return sites.find((s) => isLinearLike(s.module))?.path ?? 'none';
}
