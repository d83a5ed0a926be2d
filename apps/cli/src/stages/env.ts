/**
 * What every stage shares — used by `topiary run` for each recipe stage and by the single-stage commands
 * (`prune`, `eval`, `finetune`), so a stage does the same thing whichever way it is started.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { TopiaryError, type CausalLM, type TensorBackend, type Tokenizer } from '@topiary/kernel';
import { sampleCalibration, tokenizeCached } from '@topiary/corpus';
import { saveModel } from '@topiary/model-llama';
import type { ArchitectureSnapshot } from '@topiary/report';
import type { RunContext } from '../context.js';

export interface StageEnv {
  run: RunContext;
  backend: TensorBackend;
  tokenizer: Tokenizer;
  /** The tokenizer file, copied next to every saved model. */
  tokenizerPath: string;
  seed: number;
}

export interface CalibrationSpec {
  path: string;
  samples: number;
  /** Window length; default the model's context. */
  seqLen?: number;
  seed: number;
}

/** Calibration windows drawn from a text file (tokenized once, cached), as the Wanda/SparseGPT papers sample. */
export async function calibrationWindows(env: StageEnv, model: CausalLM, spec: CalibrationSpec, where: string): Promise<Int32Array[]> {
  const seqLen = spec.seqLen ?? model.config.maxSeqLen;
  if (seqLen > model.config.maxSeqLen) {
    throw new TopiaryError('E_USAGE', `${seqLen} is longer than the model's context (${model.config.maxSeqLen})`, { where: `${where}.seqlen` });
  }
  let corpus;
  try {
    corpus = await tokenizeCached(spec.path, env.tokenizer);
  } catch (e) {
    // a missing or unreadable file: name the flag/field that pointed at it, and the file
    if (e instanceof TopiaryError && (e.code === 'E_IO' || e.code === 'E_DATA')) {
      throw new TopiaryError(e.code, e.message, { file: spec.path, where, hint: e.hint, cause: e });
    }
    throw e;
  }
  return sampleCalibration(corpus, { samples: spec.samples, seqLen, seed: spec.seed, file: spec.path });
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
export async function saveModelWithTokenizer(model: CausalLM, dir: string, tokenizerPath: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await saveModel(model, dir);
  copyFileSync(tokenizerPath, join(dir, basename(tokenizerPath)));
  const tokConfig = join(dirname(tokenizerPath), 'tokenizer_config.json');
  if (basename(tokenizerPath) === 'tokenizer.json' && existsSync(tokConfig)) copyFileSync(tokConfig, join(dir, 'tokenizer_config.json'));
}
