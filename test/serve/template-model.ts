import { copyFile, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MODEL_DIR } from './harness.js';

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
