/**
 * What every stage shares — used by a recipe's stages and by the single-stage commands (`topiary prune`, `eval`,
 * `finetune`), so a stage does the same thing whichever way it is started.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { TopiaryError, type CalibrationDefaults, type CausalLM, type DependencyContainer, type EventBus, type TensorBackend, type Tokenizer } from '@topiary/kernel';
import { calibrationCorpus, sampleCalibration } from '@topiary/corpus';
import { saveModel, type SaveOptions } from '@topiary/model-llama';
import type { ArchitectureSnapshot } from '@topiary/report';

/** The part of a stage's context (the kernel's `StageContext`) that single-stage commands can give too. */
export interface StageEnv {
  /** The run's plugins. */
  container: DependencyContainer;
  events: EventBus;
  backend: TensorBackend;
  tokenizer: Tokenizer;
  /** The tokenizer file, copied next to every saved model. */
  tokenizerPath: string;
  seed: number;
}

export interface CalibrationSpec {
  path: string;
  /** Windows; default the method's own (`Pruner.calibrationDefaults`), else 128. */
  samples?: number;
  /** Window length; default the method's own, else the model's context. */
  seqLen?: number;
  seed: number;
}

/** When neither the user nor the method says: the Wanda/SparseGPT papers' 128 windows of the model's context. */
export const DEFAULT_CALIBRATION_SAMPLES = 128;

/** The calibration size a stage uses: what the user gave, else the method's published default, else 128 × context. */
export function resolveCalibrationSize(spec: Pick<CalibrationSpec, 'samples' | 'seqLen'>, model: CausalLM, defaults?: CalibrationDefaults): { samples: number; seqLen: number } {
  const context = model.config.maxSeqLen;
  return {
    samples: spec.samples ?? defaults?.samples ?? DEFAULT_CALIBRATION_SAMPLES,
    seqLen: spec.seqLen ?? Math.min(defaults?.seqLen ?? context, context),
  };
}

/** Calibration windows drawn from a file (tokenized once, cached), as the Wanda/SparseGPT code samples (see corpus's calibration.ts). */
export async function calibrationWindows(env: StageEnv, model: CausalLM, spec: CalibrationSpec, where: string, defaults?: CalibrationDefaults): Promise<Int32Array[]> {
  const { samples, seqLen } = resolveCalibrationSize(spec, model, defaults);
  if (seqLen > model.config.maxSeqLen) {
    throw new TopiaryError('E_USAGE', `${seqLen} is longer than the model's context (${model.config.maxSeqLen})`, { where: `${where}.seqlen` });
  }
  let corpus;
  try {
    corpus = await calibrationCorpus(spec.path, env.tokenizer);
  } catch (e) {
    // a missing or unreadable file: name the flag/field that pointed at it, and the file
    if (e instanceof TopiaryError && (e.code === 'E_IO' || e.code === 'E_DATA')) {
      throw new TopiaryError(e.code, e.message, { file: spec.path, where, hint: e.hint, cause: e });
    }
    throw e;
  }
  return sampleCalibration(corpus, { samples, seqLen, seed: spec.seed, file: spec.path });
}

/** Per-layer widths and size of a model, for before/after plots. */
export function architectureOf(model: CausalLM): ArchitectureSnapshot {
  const c = model.config;
  const layers = Array.from({ length: c.nLayers }, (_, i) => {
    const l = c.layers?.[i];
    return { nHeads: l?.nHeads ?? c.nHeads, nKvHeads: l?.nKvHeads ?? c.nKvHeads, hiddenDim: l?.hiddenDim ?? c.hiddenDim };
  });
  return { dim: c.dim, parameters: model.parameterCount(), layers };
}

/** Save a model with its tokenizer beside it, so the folder loads on its own (`--model DIR`). */
export async function saveModelWithTokenizer(model: CausalLM, dir: string, tokenizerPath: string, options: SaveOptions = {}): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await saveModel(model, dir, options); // default: the dtype the model was loaded with
  copyTokenizer(tokenizerPath, dir);
}

/** Copy the tokenizer (and an HF tokenizer_config.json beside it) into a model folder. */
export function copyTokenizer(tokenizerPath: string, dir: string): void {
  mkdirSync(dir, { recursive: true });
  copyFileSync(tokenizerPath, join(dir, basename(tokenizerPath)));
  const tokConfig = join(dirname(tokenizerPath), 'tokenizer_config.json');
  if (basename(tokenizerPath) === 'tokenizer.json' && existsSync(tokConfig)) copyFileSync(tokConfig, join(dir, 'tokenizer_config.json'));
}
