import { join } from 'node:path';
import { TokenizerError } from './errors.js';
import type { TokenizerFiles } from './tokenizer-files.js';

/** Jinja source plus where it came from, so errors can name the file to fix. */
export interface ChatTemplateSource {
  source: string;
  origin: string;
}

/**
 * The chat templates a tokenizer folder ships, by name. chat_template.jinja wins over tokenizer_config.json's
 * `chat_template` (as in transformers); that field is either one template (named "default" here) or a list of
 * `{ name, template }`.
 */
export function readChatTemplates(files: TokenizerFiles): Map<string, ChatTemplateSource> {
  const templates = new Map<string, ChatTemplateSource>();
  if (files.chatTemplateJinja !== null) {
    templates.set('default', { source: files.chatTemplateJinja, origin: join(files.dir, 'chat_template.jinja') });
    return templates;
  }
  const configPath = join(files.dir, 'tokenizer_config.json');
  const field = files.tokenizerConfig['chat_template'];
  if (field === undefined || field === null) return templates;
  if (typeof field === 'string') {
    templates.set('default', { source: field, origin: configPath });
    return templates;
  }
  if (!Array.isArray(field)) throw badChatTemplateField(configPath);
  for (const entry of field) {
    const { name, template } = (entry ?? {}) as { name?: unknown; template?: unknown };
    if (typeof name !== 'string' || typeof template !== 'string') throw badChatTemplateField(configPath);
    templates.set(name, { source: template, origin: `${configPath} (template "${name}")` });
  }
  return templates;
}

/**
 * transformers' choice: `requested` names one of the shipped templates or else is Jinja source itself; without it,
 * "tool_use" when tools are passed and the tokenizer has one, otherwise "default".
 */
export function selectChatTemplate(
  templates: ReadonlyMap<string, ChatTemplateSource>,
  dir: string,
  requested: string | undefined,
  hasTools: boolean,
): ChatTemplateSource {
  if (requested !== undefined) {
    return templates.get(requested) ?? { source: requested, origin: 'the chatTemplate option' };
  }
  const chosen = (hasTools ? templates.get('tool_use') : undefined) ?? templates.get('default');
  if (chosen !== undefined) return chosen;
  if (templates.size > 0) {
    const names = [...templates.keys()].map((name) => `"${name}"`).join(', ');
    const path = join(dir, 'tokenizer_config.json');
    throw new TokenizerError(path, `${path} has chat templates named ${names} but none named "default"; pass chatTemplate with one of those names.`);
  }
  throw new TokenizerError(
    dir,
    `${dir} has no chat template (neither chat_template.jinja nor a chat_template field in tokenizer_config.json); add one there, or pass Jinja source as the chatTemplate option.`,
  );
}

function badChatTemplateField(path: string): TokenizerError {
  return new TokenizerError(
    path,
    `${path} has a chat_template that is neither a string nor a list of { "name", "template" } strings; fix that field or move the template into chat_template.jinja.`,
  );
}
