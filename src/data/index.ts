export { DataError } from './errors.js';
export { DEFAULT_MAX_LINE_BYTES, readJsonl, type JsonlContents, type JsonlRecord, type ReadJsonlOptions, type SkippedLine } from './jsonl.js';
export { DATA_FORMATS, detectFormat, normalizeRecord, type DataFormat, type NormalizedExample } from './formats.js';
export { alpacaPrompt } from './alpaca.js';
export { chatSegments, type TextSegment } from './chat-segments.js';
export { tokenizeExample, promptAndReference, IGNORE_INDEX, type DataTokenizer, type TokenizedExample, type TokenizeOptions } from './tokenize.js';
export { packExamples } from './packing.js';
export { collate, epochBatches, epochOrder, type Batch } from './batching.js';
export { prepareDataset, describeSummary, type DatasetOptions, type PreparedData, type PreparedSplit, type DataSummary } from './dataset.js';
