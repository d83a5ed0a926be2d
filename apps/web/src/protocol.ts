/** Messages between the page and its compute worker (src/worker.ts). Plain data: structured-clone safe. */
import type { OptionField } from '@topiary/kernel';

/** A file the user picked (or the bundled example), by name. */
export interface PickedFile {
  name: string;
  bytes: ArrayBuffer;
}

export interface LayerRow {
  layer: number;
  /** `q_proj`, `gate_proj`, … with its [out, in] shape and parameter count. */
  tensors: Array<{ name: string; shape: number[]; parameters: number }>;
  heads: number;
  kvHeads: number;
  ffn: number;
  parameters: number;
}

export interface ModelSummary {
  label: string;
  format: string;
  dtype: string;
  tokenizer: string;
  vocabSize: number;
  dim: number;
  layers: number;
  context: number;
  parameters: number;
  /** Non-zero weights (after element pruning). */
  nonZero: number;
  rows: LayerRow[];
}

export interface PrunerInfo {
  name: string;
  description: string;
  granularity: string;
  needsCalibration: boolean;
  calibrationDefaults?: { samples: number; seqLen?: number; source: string };
  fields: OptionField[];
}

export interface EngineInfo {
  backend: string;
  threads: number;
  crossOriginIsolated: boolean;
  notes: string[];
  pruners: PrunerInfo[];
}

export interface PruneSummary {
  method: string;
  seconds: number;
  sparsity?: number;
  parametersBefore: number;
  parametersAfter: number;
  layers: Array<{ param: string; layer: number; sparsity: number }>;
  widthsBefore: Array<{ nHeads: number; nKvHeads: number; hiddenDim: number }>;
  widthsAfter: Array<{ nHeads: number; nKvHeads: number; hiddenDim: number }>;
  calibration?: { samples: number; seqLen: number };
  model: ModelSummary;
  /** The report's per-layer sparsity / width charts (inline SVG from packages/report). */
  charts: string;
}

export interface PerplexitySummary {
  which: 'original' | 'pruned';
  ppl: number;
  tokens: number;
  windows: number;
  seqLen: number;
}

export interface DownloadFile {
  name: string;
  bytes: ArrayBuffer;
}

/** Page → worker. `id` pairs a request with its answer. */
export type Request =
  | { id: number; kind: 'init'; threads?: number }
  | { id: number; kind: 'open'; files: PickedFile[]; label: string; memoryLimitBytes?: number }
  | { id: number; kind: 'generate'; which: 'original' | 'pruned'; prompt: string; maxTokens: number; temperature: number; seed: number }
  | {
      id: number;
      kind: 'prune';
      method: string;
      /** Option values as typed (text), turned into values by the pruner's schema as the CLI's flags are. */
      options: Record<string, string | boolean>;
      calibration: { name: string; text: string; samples?: number; seqLen?: number; seed: number };
    }
  | { id: number; kind: 'perplexity'; which: 'original' | 'pruned'; name: string; text: string; seqLen?: number; limit?: number }
  | { id: number; kind: 'export'; format: 'safetensors' | 'gguf' };

export type Answer =
  | { kind: 'init'; info: EngineInfo }
  | { kind: 'open'; summary: ModelSummary }
  | { kind: 'generate'; text: string; tokens: number }
  | { kind: 'prune'; summary: PruneSummary }
  | { kind: 'perplexity'; result: PerplexitySummary }
  | { kind: 'export'; files: DownloadFile[] };

/** A failure, for people: the file or field at fault, the reason, what to do. */
export interface Failure {
  code: string;
  message: string;
  file?: string;
  where?: string;
  hint?: string;
}

/** Worker → page. */
export type Message =
  | { id: number; type: 'done'; answer: Answer }
  | { id: number; type: 'failed'; failure: Failure }
  | { id: number; type: 'progress'; task: string; current: number; total: number; info?: string }
  | { id: number; type: 'token'; text: string }
  | { id: -1; type: 'log'; level: string; message: string };
