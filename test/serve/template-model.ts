import { copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixturePath } from '../helpers/fixtures.js';
import { BASE_MODEL, MODEL_DIR, startServer, type TestServer } from './harness.js';

/**
 * The fixture model with another chat template (Qwen3's renders tools and writes Hermes <tool_call> calls), and a
 * context of 2048 positions for a template's tool instructions (default RoPE does not depend on it). The caller
 * removes the folder.
 */
export async function modelWithTemplate(template: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'loraforge-tools-'));
  for (const file of await readdir(MODEL_DIR)) if (file !== 'chat_template.jinja' && file !== 'config.json') await copyFile(join(MODEL_DIR, file), join(dir, file));
  await writeFile(join(dir, 'chat_template.jinja'), template);
  const config = JSON.parse(await readFile(join(MODEL_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, max_position_embeddings: 2048 }));
  return dir;
}

/** A server of the fixture model under `template`; close() stops it and removes its folder. */
export async function serveWithTemplate(template: string): Promise<{ readonly t: TestServer; close(): Promise<void> }> {
  const dir = await modelWithTemplate(template);
  const t = await startServer({ modelDir: dir, modelName: BASE_MODEL });
  return {
    t,
    close: async () => {
      await t.server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Qwen3's chat template (tools rendered, Hermes <tool_call> calls). */
export function qwen3Template(): Promise<string> {
  return readFile(fixturePath('templates', 'Qwen-Qwen3-0.6B.jinja'), 'utf8');
}

/** Two functions' parameters for client tests; strings bounded so a random-weight model's calls end soon. */
export const WEATHER = {
  type: 'object',
  properties: { city: { type: 'string', maxLength: 10 }, unit: { enum: ['c', 'f'] } },
  required: ['city', 'unit'],
  additionalProperties: false,
} as const;
export const TIME = { type: 'object', properties: { zone: { type: 'string', maxLength: 6 } }, required: ['zone'], additionalProperties: false } as const;
export const SCHEMAS: Readonly<Record<string, object>> = { get_weather: WEATHER, get_time: TIME };
