import { loraScaling, type ResolvedLoraConfig } from './config.js';
import type { AdapterWeightsFactory } from './adapter-weights.js';
import { Embedding } from '../nn/layers.js';
import { PeftError } from './errors.js';
import { LoraEmbedding } from './lora-embedding.js';
import { LoraLinear } from './lora-linear.js';
import { LoraExperts } from './lora-experts.js';
import type { MoeExperts } from '../models/moe.js';
import { TrainableTokensWrapper } from './trainable-tokens.js';
import { ModulesToSaveWrapper, type CopyableLayer } from './modules-to-save.js';
import type { LoraRuntimeState } from './runtime-state.js';
import { patternValue, planTargets, type TargetModel } from './targets.js';

/**
 * Adds adapter `name` to the model in place: every targeted linear layer is wrapped in a LoraLinear (or, when it
 * already is one, gains another adapter), and every modules_to_save layer gets a trainable copy. Returns the config
 * as PEFT stores it (target_modules resolved). On error the model may hold part of the adapter; the caller removes it.
 */
export function injectAdapter(
  model: TargetModel,
  name: string,
  config: ResolvedLoraConfig,
  state: LoraRuntimeState,
  weights: AdapterWeightsFactory,
): ResolvedLoraConfig {
  const plan = planTargets(model, config);
  const c = plan.config;
  for (const site of plan.loraSites) {
    const existing = site.module instanceof LoraLinear ? site.module : null;
    const layer = existing ?? new LoraLinear(site.module as LoraLinear['base_layer'], site.path, state);
    const r = patternValue(c.rankPattern, site.path, c.r);
    const alpha = patternValue(c.alphaPattern, site.path, c.loraAlpha);
    const settings = { r, alpha, scaling: loraScaling(alpha, r, c.useRslora), dropout: c.loraDropout, useDora: c.useDora, loraBias: c.loraBias };
    layer.addAdapter(name, settings, weights({ path: site.path, inFeatures: layer.inFeatures, outFeatures: layer.outFeatures, settings }));
    if (!existing) site.parent!.replaceChild(site.name, layer);
  }
  for (const { site, parameters } of plan.expertSites) {
    const existing = site.module instanceof LoraExperts ? site.module : null;
    if (existing && (existing.parameters.length !== parameters.length || parameters.some((p) => !existing.parameters.includes(p)))) {
      throw new PeftError(`${site.path} already has adapters on ${existing.parameters.join(', ')}; every adapter using target_parameters must target the same parameters of a layer (as PEFT requires), not ${parameters.join(', ')}.`);
    }
    const layer = existing ?? new LoraExperts(site.module as MoeExperts, site.path, parameters, state);
    const ranks = parameters.map((p) => [patternValue(c.rankPattern, `${site.path}.${p}`, c.r), patternValue(c.alphaPattern, `${site.path}.${p}`, c.loraAlpha)] as const);
    const [r, alpha] = ranks[0]!;
    if (ranks.some(([pr, pa]) => pr !== r || pa !== alpha)) {
      throw new PeftError(`rank_pattern / alpha_pattern give the parameters of ${site.path} different ranks or alphas; loraforge needs one r and lora_alpha per expert layer, so give ${parameters.join(' and ')} the same.`);
    }
    const settings = { r, alpha, scaling: loraScaling(alpha, r, c.useRslora), dropout: 0, useDora: false, loraBias: false };
    const factors = new Map(parameters.map((p) => [p, weights({ path: layer.keyPath(site.path, p), ...layer.features(p), settings, experts: layer.numExperts })] as const));
    layer.addAdapter(name, { r, alpha, scaling: settings.scaling }, factors);
    if (!existing) site.parent!.replaceChild(site.name, layer);
  }
  for (const site of plan.embeddingSites) {
    const existing = site.module instanceof LoraEmbedding ? site.module : null;
    const layer = existing ?? new LoraEmbedding(site.module as Embedding, site.path, state);
    if (c.loraBias) throw new PeftError(`lora_bias=true is not supported for Embedding (${site.path}); turn loraBias off or leave the embedding out of target_modules.`);
    if (c.useDora) throw new PeftError(`DoRA on an embedding (${site.path}) is not supported here; turn useDora off or leave the embedding out of target_modules.`);
    const r = patternValue(c.rankPattern, site.path, c.r);
    const alpha = patternValue(c.alphaPattern, site.path, c.loraAlpha);
    const settings = { r, alpha, scaling: loraScaling(alpha, r, c.useRslora), dropout: 0, useDora: false, loraBias: false };
    const w = weights({ path: site.path, inFeatures: layer.numEmbeddings, outFeatures: layer.embeddingDim, settings, kind: 'embedding' });
    layer.addAdapter(name, { r, alpha, scaling: settings.scaling }, w.a, w.b);
    if (!existing) site.parent!.replaceChild(site.name, layer);
  }
  for (const { site, indices } of plan.tokenSites) {
    const existing = site.module instanceof TrainableTokensWrapper ? site.module : null;
    const wrapper = existing ?? new TrainableTokensWrapper(site.module as Embedding, site.path, state);
    wrapper.addAdapter(name, indices);
    if (!existing) site.parent!.replaceChild(site.name, wrapper);
  }
  for (const site of plan.saveSites) {
    const existing = site.module instanceof ModulesToSaveWrapper ? site.module : null;
    const wrapper = existing ?? new ModulesToSaveWrapper(site.module as CopyableLayer, site.path, state);
    wrapper.addAdapter(name);
    if (!existing) site.parent!.replaceChild(site.name, wrapper);
  }
  return c;
}
