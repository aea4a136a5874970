import { readFileSync } from 'node:fs';
import { parseModelConfig, type ModelConfig } from '../src/models/config.js';

/** The config of a benchmark shape: its config.json fields in bench/shapes.json (shared with bench/random_llama.py). */
export function benchConfig(shape: string): ModelConfig {
  const shapes = JSON.parse(readFileSync(new URL('../../bench/shapes.json', import.meta.url), 'utf8')) as Record<string, Record<string, unknown>>;
  const raw = shape.startsWith('_') ? undefined : shapes[shape];
  if (!raw) throw new Error(`Unknown benchmark shape "${shape}"; bench/shapes.json has ${Object.keys(shapes).filter((k) => !k.startsWith('_')).join(', ')}.`);
  return parseModelConfig(raw, `bench/shapes.json ${shape}`);
}
