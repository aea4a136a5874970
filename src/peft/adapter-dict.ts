import { Module } from '../nn/module.js';

/**
 * Per-adapter children of a LoRA layer, keyed by adapter name (PEFT's ModuleDict), so that parameter names come
 * out as PEFT spells them: `q_proj.lora_A.<adapter>.weight`.
 */
export class AdapterDict<M extends Module> extends Module {
  private readonly entries = new Map<string, M>();

  get(name: string): M | undefined {
    return this.entries.get(name);
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  set(name: string, module: M): void {
    this.entries.set(name, module);
    this.registerModule(name, module);
  }

  delete(name: string): void {
    this.entries.delete(name);
    this.unregisterModule(name);
  }
}
