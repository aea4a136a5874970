import { join } from 'node:path';
import { folderFiles } from '../io/folder-files.js';
import { resolveHubDataset, isRepoId, type ResolvePretrainedOptions } from '../io/hub.js';
import { pathKind } from '../io/path-kind.js';
import { DataError } from './errors.js';
import { readJsonl, type ReadJsonlOptions } from './jsonl.js';
import { readParquetRows } from './parquet.js';
import { DATA_FILE_EXTENSIONS, splitFiles } from './split-files.js';

/** Where a Hub dataset comes from: revision, token, cache folder, endpoint (the defaults follow the HF_* variables). */
export type HubDatasetOptions = Omit<ResolvePretrainedOptions, 'files'>;

export interface DataSource {
  /** A JSONL or parquet file, a folder of them in the Hub's layout, or a Hub dataset id (org/name). */
  spec: string;
  /** The split a folder or Hub dataset is read for, when the caller names one (a single file has no splits). */
  split?: string;
  /** The split read when `split` is not given. */
  defaultSplit: string;
  /** A glob over the folder's or repo's paths, in place of the split conventions. */
  dataFiles?: string;
  /** The options that set `split` and `dataFiles`, named in messages. */
  flags: { split: string; dataFiles?: string };
  hub?: HubDatasetOptions;
}

/** One data file on disk, and how messages name it (the path, or hf://datasets/org/name/<file> for the Hub). */
interface DataFile {
  path: string;
  label: string;
}

export interface SourceRecord {
  /** "label:line" for JSONL, "label row N" for parquet (1-based). */
  where: string;
  value: Record<string, unknown>;
}

export interface SourceContents {
  records: SourceRecord[];
  skipped: { where: string; reason: string }[];
}

/** Every record of the source's files in order; malformed JSONL lines are skipped (and listed) with `lines.skipMalformed`. */
export async function readSource(source: DataSource, lines: ReadJsonlOptions): Promise<SourceContents> {
  const out: SourceContents = { records: [], skipped: [] };
  for (const file of await dataFiles(source)) {
    if (file.path.endsWith('.parquet')) {
      (await readParquetRows(file.path, file.label)).forEach((value, i) => out.records.push({ where: `${file.label} row ${i + 1}`, value }));
      continue;
    }
    const contents = await readJsonl(file.path, lines);
    for (const r of contents.records) out.records.push({ where: `${file.label}:${r.line}`, value: r.value });
    for (const s of contents.skipped) out.skipped.push({ where: `${file.label}:${s.line}`, reason: `the line ${s.reason}` });
  }
  return out;
}

async function dataFiles(source: DataSource): Promise<DataFile[]> {
  const { spec } = source;
  const kind = await pathKind(spec);
  if (kind === 'file') {
    if (source.dataFiles !== undefined) refuseForFile(source.flags.dataFiles ?? 'data-files', 'chooses files within', spec);
    if (source.split !== undefined) refuseForFile(source.flags.split, 'names a split of', spec);
    return [{ path: spec, label: spec }];
  }
  const selection = { split: source.split ?? source.defaultSplit, ...(source.dataFiles !== undefined ? { dataFiles: source.dataFiles } : {}), flags: source.flags };
  if (kind === 'dir') {
    const files = await folderFiles(spec);
    return splitFiles(files, { ...selection, label: spec }).map((f) => ({ path: join(spec, f), label: join(spec, f) }));
  }
  // A name with a data file's extension (data/train.jsonl) is a mistyped path, not a repo.
  if (!isRepoId(spec) || DATA_FILE_EXTENSIONS.some((ext) => spec.endsWith(ext))) {
    throw new DataError(`${spec} does not exist; pass a JSONL or parquet file, a folder of them, or a Hub dataset id of the form org/name.`);
  }
  const snapshot = await resolveHubDataset(spec, (paths) => splitFiles(paths, { ...selection, label: `the Hub dataset ${spec}` }), source.hub);
  return snapshot.files.map((f) => ({ path: join(snapshot.dir, f), label: `hf://datasets/${spec}/${f}` }));
}

function refuseForFile(flag: string, does: string, spec: string): never {
  throw new DataError(`${flag} ${does} a folder or Hub dataset, but ${spec} is a single file; drop ${flag} or pass the folder.`);
}
