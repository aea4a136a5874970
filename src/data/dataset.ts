import { Rng } from '../tensor/random.js';
import { mapColumns, type ColumnMapping } from './columns.js';
import { readSource, type DataSource, type HubDatasetOptions } from './data-source.js';
import { DataError } from './errors.js';
import { detectFormat, normalizeRecord, type DataFormat, type NormalizedExample } from './formats.js';
import { type ReadJsonlOptions } from './jsonl.js';
import { packExamples } from './packing.js';
import { IGNORE_INDEX, tokenizeExample, type DataTokenizer, type TokenizedExample, type TokenizeOptions } from './tokenize.js';

export interface DatasetOptions {
  /** Training examples: a JSONL or parquet file, a folder of them in the Hub's layout, or a Hub dataset id (org/name). */
  path: string;
  /** The split a folder or Hub dataset is read for (default "train"). */
  split?: string;
  /** A glob over the folder's or Hub dataset's paths choosing the training files, in place of the split conventions. */
  dataFiles?: string;
  /** Columns that fill the fields the formats read, e.g. { prompt: 'question', completion: 'answer' }. */
  columns?: ColumnMapping;
  /** Revision, token, cache folder and endpoint for Hub datasets. */
  hub?: HubDatasetOptions;
  /** Declared format; 'auto' (default) detects it from the first example's keys. */
  format?: DataFormat | 'auto';
  /** Examples longer than this many tokens are truncated (their end is cut). */
  seqLen: number;
  /** Take the loss on prompts / user turns too (default: completions and assistant turns only). */
  trainOnInputs?: boolean;
  /** How chat examples render: template kwargs (enable_thinking, tools), another template. */
  chatTemplate?: TokenizeOptions['chatTemplate'];
  /**
   * Bin-pack training examples into rows of up to seqLen tokens (first-fit decreasing, packExamples); each still
   * trains as if alone (training split only).
   */
  packing?: boolean;
  /** Skip malformed lines and records instead of stopping; the summary counts them. */
  skipMalformed?: boolean;
  /** Longest JSONL line, in bytes (default 16 MiB); a longer one is malformed. */
  maxLineBytes?: number;
  /** Held-out examples (same format and columns): a file, a folder or a Hub dataset id. */
  validationPath?: string;
  /** The split a validation folder or Hub dataset is read for (default "validation"). */
  validationDataSplit?: string;
  /** Fraction of the training file held out (seeded), used when there is no validation file. */
  validationSplit?: number;
  seed: number;
}

export interface PreparedSplit {
  /** Rows the trainer batches: truncated, and packed when asked. */
  examples: TokenizedExample[];
  /** The examples as read, for generation-based evaluation and report samples. */
  records: NormalizedExample[];
}

export interface DataSummary {
  format: DataFormat;
  trainRecords: number;
  evalRecords: number;
  /** Lines or records skipped because they were malformed (only with skipMalformed), with where and why. */
  skipped: { where: string; reason: string }[];
  /** Examples cut at seqLen. */
  truncated: number;
  /** Examples left without any loss target after truncation; they cannot teach anything and are left out. */
  withoutTargets: number;
  /** With packing: the rows the training examples were packed into, and the share of their seqLen slots filled. */
  packed?: { rows: number; seqLen: number; fill: number };
}

export interface PreparedData {
  format: DataFormat;
  train: PreparedSplit;
  eval: PreparedSplit | null;
  summary: DataSummary;
}

interface ReadRecords {
  records: NormalizedExample[];
  wheres: string[];
  format: DataFormat;
}

async function readRecords(source: DataSource, declared: DataFormat | 'auto', columns: ColumnMapping, lines: ReadJsonlOptions, skipped: DataSummary['skipped']): Promise<ReadRecords> {
  const skipMalformed = lines.skipMalformed ?? false;
  const contents = await readSource(source, lines);
  skipped.push(...contents.skipped);
  const first = contents.records[0]!;
  const format = declared === 'auto' ? detectFormat(mapColumns(first.value, columns, first.where), first.where) : declared;
  const records: NormalizedExample[] = [];
  const wheres: string[] = [];
  for (const r of contents.records) {
    const where = r.where;
    try {
      records.push(normalizeRecord(mapColumns(r.value, columns, where), format, where));
      wheres.push(where);
    } catch (err) {
      if (!(err instanceof DataError) || !skipMalformed) throw err;
      skipped.push({ where, reason: err.message.slice(where.length + 2) });
    }
  }
  if (records.length === 0) throw new DataError(`${source.spec} holds no usable ${format} examples; every record was skipped as malformed.`);
  return { records, wheres, format };
}

/** Reads, validates, splits, tokenizes, truncates and (optionally) packs a dataset (JSONL, parquet, a folder or a Hub dataset). */
export async function prepareDataset(options: DatasetOptions, tok: DataTokenizer): Promise<PreparedData> {
  if (!(options.seqLen >= 2)) throw new DataError(`seq-len must be at least 2 tokens, got ${options.seqLen}.`);
  const skipped: DataSummary['skipped'] = [];
  const lines: ReadJsonlOptions = { skipMalformed: options.skipMalformed ?? false, ...(options.maxLineBytes !== undefined ? { maxLineBytes: options.maxLineBytes } : {}) };
  const columns = options.columns ?? {};
  const hub = options.hub ? { hub: options.hub } : {};
  const trainSource: DataSource = {
    spec: options.path,
    ...(options.split !== undefined ? { split: options.split } : {}),
    defaultSplit: 'train',
    ...(options.dataFiles !== undefined ? { dataFiles: options.dataFiles } : {}),
    flags: { split: '--data-split', dataFiles: '--data-files' },
    ...hub,
  };
  const train = await readRecords(trainSource, options.format ?? 'auto', columns, lines, skipped);
  let evalRead: ReadRecords | null = null;
  if (options.validationPath) {
    const evalSource: DataSource = {
      spec: options.validationPath,
      ...(options.validationDataSplit !== undefined ? { split: options.validationDataSplit } : {}),
      defaultSplit: 'validation',
      flags: { split: '--validation-data-split' },
      ...hub,
    };
    evalRead = await readRecords(evalSource, train.format, columns, lines, skipped);
  } else if (options.validationSplit && options.validationSplit > 0) {
    if (options.validationSplit >= 1) throw new DataError(`validation-split must be a fraction below 1, got ${options.validationSplit}.`);
    const n = train.records.length;
    const held = Math.max(1, Math.round(n * options.validationSplit));
    if (held >= n) throw new DataError(`${options.path} has ${n} examples, too few to hold out ${options.validationSplit * 100}% and still train.`);
    const order = new Rng(options.seed).shuffle(Array.from({ length: n }, (_, i) => i));
    const heldOut = new Set(order.slice(0, held));
    const pick = (keep: boolean): ReadRecords => {
      const idx = [...Array(n).keys()].filter((i) => heldOut.has(i) === keep);
      return { records: idx.map((i) => train.records[i]!), wheres: idx.map((i) => train.wheres[i]!), format: train.format };
    };
    evalRead = pick(true);
    Object.assign(train, pick(false));
  }

  const summary: DataSummary = { format: train.format, trainRecords: train.records.length, evalRecords: evalRead?.records.length ?? 0, skipped, truncated: 0, withoutTargets: 0 };
  const tokenizeAll = (read: ReadRecords): PreparedSplit => {
    const examples: TokenizedExample[] = [];
    const records: NormalizedExample[] = [];
    read.records.forEach((rec, i) => {
      // One token past seq-len, so that a cut is seen (and counted) without encoding the rest.
      const ex = tokenizeExample(rec, tok, { trainOnInputs: options.trainOnInputs, where: read.wheres[i], maxTokens: options.seqLen + 1, ...(options.chatTemplate ? { chatTemplate: options.chatTemplate } : {}) });
      if (ex.inputIds.length > options.seqLen) {
        summary.truncated++;
        ex.inputIds.length = options.seqLen;
        ex.labels.length = options.seqLen;
      }
      if (!ex.labels.some((l, t) => t > 0 && l !== IGNORE_INDEX)) {
        summary.withoutTargets++;
        return;
      }
      examples.push(ex);
      records.push(rec);
    });
    return { examples, records };
  };
  const trainSplit = tokenizeAll(train);
  if (trainSplit.examples.length === 0) {
    throw new DataError(`No training example of ${options.path} keeps a loss target within seq-len ${options.seqLen}; raise --seq-len.`);
  }
  if (options.packing) {
    trainSplit.examples = packExamples(trainSplit.examples, options.seqLen);
    const tokens = trainSplit.examples.reduce((s, r) => s + r.inputIds.length, 0);
    summary.packed = { rows: trainSplit.examples.length, seqLen: options.seqLen, fill: tokens / (trainSplit.examples.length * options.seqLen) };
  }
  return { format: train.format, train: trainSplit, eval: evalRead ? tokenizeAll(evalRead) : null, summary };
}

/** One line per fact the user should know about their data (printed before training and kept in the report). */
export function describeSummary(s: DataSummary): string[] {
  const lines = [`data: ${s.trainRecords} training and ${s.evalRecords} held-out ${s.format} examples`];
  if (s.skipped.length) {
    lines.push(`skipped ${s.skipped.length} malformed line(s): ${s.skipped.slice(0, 3).map((k) => `${k.where} (${k.reason})`).join('; ')}${s.skipped.length > 3 ? '; ...' : ''}`);
  }
  if (s.truncated) lines.push(`${s.truncated} example(s) were truncated to seq-len`);
  if (s.withoutTargets) lines.push(`${s.withoutTargets} example(s) had no loss target left within seq-len and were left out`);
  if (s.packed) lines.push(`packed into ${s.packed.rows} row(s) of up to ${s.packed.seqLen} tokens, ${(s.packed.fill * 100).toFixed(1)}% filled; each example attends only to itself`);
  return lines;
}
