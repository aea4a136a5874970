import { DataError } from './errors.js';
import { globRegExp } from './glob.js';

/** File types a dataset's split may be stored in. */
export const DATA_FILE_EXTENSIONS = ['.parquet', '.jsonl'] as const;

/** The datasets library's names for the usual splits (data_files.py SPLIT_KEYWORDS); any other split is its own keyword. */
const SPLIT_KEYWORDS: Readonly<Record<string, readonly string[]>> = {
  train: ['train', 'training'],
  validation: ['validation', 'valid', 'dev', 'val'],
  test: ['test', 'testing', 'eval', 'evaluation'],
};

/** Characters that may stand around a split keyword in a path, as in `data/train-00000-of-00001.parquet` or `my_test.jsonl`. */
const DELIMITER = '[-._ 0-9/]';

export interface SplitSelection {
  split: string;
  /** A glob over the repo's paths that replaces the conventions (`--data-files`). */
  dataFiles?: string;
  /** Names the dataset in messages ("org/name", or a folder). */
  label: string;
  /** The option that names the split, and the one that gives `dataFiles` when the caller has one, for messages. */
  flags: { split: string; dataFiles?: string };
}

/**
 * The data files of one split, following the Hub's conventions as the datasets library does: an explicit glob;
 * else the sharded `data/<split>-NNNNN-of-NNNNN.*` files; else files whose path names the split (train.jsonl,
 * data/my-train-0.parquet, train/part.jsonl); else, for "train" only, every data file when no path names any split.
 */
export function splitFiles(paths: readonly string[], sel: SplitSelection): string[] {
  const data = paths.filter((p) => DATA_FILE_EXTENSIONS.some((ext) => p.endsWith(ext)) && !p.split('/').some((part) => part.startsWith('.'))).sort();
  if (data.length === 0) throw new DataError(`${sel.label} has no ${DATA_FILE_EXTENSIONS.join(' or ')} files; loraforge reads datasets stored in those formats.`);
  if (sel.dataFiles !== undefined) {
    const glob = globRegExp(sel.dataFiles);
    const picked = data.filter((p) => glob.test(p));
    if (picked.length === 0) throw new DataError(`${sel.flags.dataFiles ?? 'The data-files glob'} ${sel.dataFiles} matches none of the data files of ${sel.label} (${describeFiles(data)}); change the glob.`);
    return picked;
  }
  const sharded = new RegExp(`^data/${escape(sel.split)}-\\d{5}-of-\\d{5}[^/]*$`);
  const shards = data.filter((p) => sharded.test(p));
  if (shards.length > 0) return shards;
  const named = data.filter((p) => namesSplit(p, keywordsOf(sel.split)));
  if (named.length > 0) return named;
  const found = splitsNamed(data);
  if (sel.split === 'train' && found.length === 0) return data;
  const have = found.length > 0 ? `its files name the split${found.length > 1 ? 's' : ''} ${found.join(', ')}` : 'its files name no split, so all of them are the train split';
  const fix = sel.flags.dataFiles !== undefined ? `pick one with ${sel.flags.split}, or choose files with ${sel.flags.dataFiles}` : `pick one with ${sel.flags.split}`;
  throw new DataError(`${sel.label} has no ${sel.split} split (${have}); ${fix}.`);
}

function keywordsOf(split: string): readonly string[] {
  return SPLIT_KEYWORDS[split] ?? [split];
}

function namesSplit(path: string, keywords: readonly string[]): boolean {
  return keywords.some((k) => new RegExp(`(?:^|${DELIMITER})${escape(k)}${DELIMITER}`).test(path));
}

/** The usual splits some file names, and the split names of `data/<split>-NNNNN-of-NNNNN` shards. */
function splitsNamed(paths: readonly string[]): string[] {
  const found = new Set<string>();
  for (const p of paths) {
    const shard = /^data\/(.+)-\d{5}-of-\d{5}[^/]*$/.exec(p);
    if (shard) found.add(shard[1]!);
    for (const [split, keywords] of Object.entries(SPLIT_KEYWORDS)) if (namesSplit(p, keywords)) found.add(split);
  }
  return [...found].sort();
}

function describeFiles(paths: readonly string[]): string {
  return paths.length <= 5 ? paths.join(', ') : `${paths.slice(0, 5).join(', ')} and ${paths.length - 5} more`;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}
