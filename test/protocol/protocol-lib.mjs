/**
 * The protocol check's Topiary side, shared by test/protocol/protocol.test.ts (seed 0) and bench/prune/protocol.mjs
 * (all seeds): the path `topiary prune --calibration FILE --eval FILE` takes — calibration drawn by
 * `calibrationCorpus` + `sampleCalibration`, a pruner resolved by name from the installed plugins, perplexity by
 * `evaluatePerplexity` (whole file, no BOS, non-overlapping windows of the model's context) — in one process, so
 * the dense model is loaded and the held-out text tokenized once.
 *
 * The other side is bench/reference/protocol_reference.py, which follows the original Wanda / SparseGPT code
 * (sampling with Python's `random`, per-matrix magnitude, the originals' sequential procedure) and never sees
 * Topiary's windows: the two agree only if the protocol is the same, up to the seed-to-seed spread.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createWasmBackend } from '@topiary/backend-wasm';
import { createContainer, EventBus, parseOptions, resolveNamed, Tokens } from '@topiary/kernel';
import { loadModel } from '@topiary/model-llama';
import { calibrationCorpus, loadTokenizer, sampleCalibration } from '@topiary/corpus';
import { evaluatePerplexity } from '@topiary/eval';
import magnitudePlugin from '@topiary/pruner-magnitude';
import wandaPlugin from '@topiary/pruner-wanda';
import sparsegptPlugin from '@topiary/pruner-sparsegpt';
import saliencyPlugin from '@topiary/saliency-basic';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MODEL_DIR = join(repoRoot, 'assets', 'models', 'stories260K-hf');
export const SPLIT_DIR = join(repoRoot, 'bench', 'reference', 'fixtures', 'tinystories-split');
export const REFERENCE_FILE = join(repoRoot, 'bench', 'reference', 'outputs', 'protocol_reference.json');

/** The cases, named as the reference names them: method + "50" (unstructured 50 %) or the N:M pattern. */
export const CASES = {
  'magnitude-50': { method: 'magnitude', options: { sparsity: 0.5 } },
  'magnitude-2:4': { method: 'magnitude', options: { pattern: '2:4' } },
  'magnitude-4:8': { method: 'magnitude', options: { pattern: '4:8' } },
  'wanda-50': { method: 'wanda', options: { sparsity: 0.5 } },
  'wanda-2:4': { method: 'wanda', options: { pattern: '2:4' } },
  'wanda-4:8': { method: 'wanda', options: { pattern: '4:8' } },
  'sparsegpt-50': { method: 'sparsegpt', options: { sparsity: 0.5 } },
  'sparsegpt-2:4': { method: 'sparsegpt', options: { pattern: '2:4' } },
  'sparsegpt-4:8': { method: 'sparsegpt', options: { pattern: '4:8' } },
};

export function readReference() {
  return JSON.parse(readFileSync(REFERENCE_FILE, 'utf8'));
}

/** Backend, tokenizer, installed pruners and the tokenized calibration text, made once. */
export async function protocolSetup({ samples = 128, seqLen = 256, calibration = join(SPLIT_DIR, 'calibration.txt'), heldout = join(SPLIT_DIR, 'heldout.txt') } = {}) {
  const backend = createWasmBackend();
  await backend.init();
  const container = createContainer();
  for (const plugin of [saliencyPlugin, magnitudePlugin, wandaPlugin, sparsegptPlugin]) plugin.register(container, {});
  const tokenizer = await loadTokenizer(join(MODEL_DIR, 'tokenizer.json'));
  const cacheDir = mkdtempSync(join(tmpdir(), 'topiary-protocol-'));
  const corpus = await calibrationCorpus(calibration, tokenizer, { cacheDir });
  return { backend, container, tokenizer, corpus, samples, seqLen, calibration, heldout, events: new EventBus() };
}

/**
 * Perplexity of a model on the held-out text: whole file, no BOS, windows of the model's context — all of them, or
 * only the first `windows` (the reference reports both: the full file and its first 40 windows).
 */
export async function heldoutPerplexity(setup, model, windows) {
  const report = await evaluatePerplexity(model, setup.tokenizer, { file: setup.heldout }, { events: setup.events, batchSize: 8, ...(windows ? { limit: windows } : {}) });
  return report.ppl;
}

/** Prune a fresh copy of the dense model with one case and one calibration seed; its held-out perplexity. */
export async function pruneAndScore(setup, caseName, seed, windows) {
  const spec = CASES[caseName];
  if (!spec) throw new Error(`unknown case ${caseName}`);
  const model = await loadModel(MODEL_DIR);
  try {
    const pruner = resolveNamed(setup.container, Tokens.Pruner, spec.method, 'pruner', 'method');
    const options = parseOptions(pruner.options, spec.options, '');
    const calibration = sampleCalibration(setup.corpus, { samples: setup.samples, seqLen: setup.seqLen, seed, file: setup.calibration });
    const started = performance.now();
    const { model: pruned, report } = await pruner.prune(model, options, {
      backend: setup.backend,
      events: setup.events,
      calibration,
      saliency: (name) => resolveNamed(setup.container, Tokens.Saliency, name, 'saliency', 'saliency'),
    });
    const seconds = (performance.now() - started) / 1000;
    const ppl = await heldoutPerplexity(setup, pruned, windows);
    if (pruned !== model) pruned.dispose();
    return { ppl, sparsity: report.sparsity, seconds };
  } finally {
    model.dispose();
  }
}

/**
 * The reference's seed band for a case — over the whole held-out file, or (`prefix`) over its first
 * `reference.runs[case].prefix.windows` windows — widened by `tolerance` (relative) on both sides.
 */
export function referenceBand(reference, caseName, { tolerance = 0.01, prefix = false } = {}) {
  const run = reference.runs?.[caseName];
  if (!run) throw new Error(`the reference has no case ${caseName}`);
  const summary = prefix ? run.prefix : run;
  if (!summary) throw new Error(`the reference has no prefix summary for ${caseName}: rerun bench/reference/protocol_reference.py`);
  return { min: summary.min * (1 - tolerance), max: summary.max * (1 + tolerance), run: summary };
}
