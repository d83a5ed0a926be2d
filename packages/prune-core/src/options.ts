/**
 * The options every post-training pruner shares, validated once (recipes and flags go through here). Method-specific
 * options (SparseGPT's block size and dampening) are validated by the method on top of these.
 */
import {
  checkPattern,
  checkNumber,
  fieldPath,
  isRecord,
  parseBlockRange,
  optionalBoolean,
  optionalNumber,
  optionalOneOf,
  optionalString,
  TopiaryError,
  type Raw,
} from '@topiary/kernel';
import type { ComparisonScope, NMPattern } from './masks.js';
import { OWL_DEFAULTS, type OwlOptions } from './owl.js';

/** A type alias (not an interface) so it is assignable to the kernel's `Record<string, unknown>` options. */
export type PostTrainingOptions = {
  /** Target fraction of zeros in every pruned linear layer (the mean, with OWL). */
  sparsity: number;
  pattern?: NMPattern;
  scope: ComparisonScope;
  owl?: OwlOptions;
  /** Saliency criterion by name (resolved through PruneContext.saliency). */
  saliency: string;
  /** Blocks to prune (all when absent). */
  layers?: number[];
  /** Calibration windows per forward call. */
  batchSize: number;
};

export const SHARED_KEYS = ['sparsity', 'pattern', 'scope', 'owl', 'owlM', 'owlLambda', 'saliency', 'layers', 'batchSize'] as const;

/**
 * Parse `0,2,4`, `1-3`, `1:4` (END exclusive) or an array of integers into sorted unique block indices (range checked
 * against the model later). Ranges read as for every pruner (the kernel's `parseBlockRange`).
 */
export function parseLayers(value: unknown, where: string): number[] {
  const parts: unknown[] = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : [value];
  const out = new Set<number>();
  for (const part of parts) {
    const text = String(part).trim();
    const range = parseBlockRange(text);
    if (!range) {
      out.add(checkNumber(text, where, { min: 0, integer: true }));
      continue;
    }
    if (range.end === null) {
      throw new TopiaryError('E_USAGE', `layer range ${text} needs its END here (a list of blocks, before the model is known)`, { where });
    }
    if (range.end <= range.start) throw new TopiaryError('E_USAGE', `layer range ${text} is empty`, { where, hint: 'A-B includes B; START:END excludes END' });
    for (let i = range.start; i < range.end; i++) out.add(i);
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * `defaultScope`: where scores are compared when the options name no scope — per output row for Wanda (its paper's
 * comparison group), one threshold per weight matrix for magnitude (the baseline of the Wanda and SparseGPT papers:
 * Wanda `--prune_method magnitude`, SparseGPT `--gmp`).
 */
export function validatePostTraining(raw: Raw, where: string, defaultSaliency: string, defaultScope: ComparisonScope = 'row'): PostTrainingOptions {
  const pattern = raw.pattern === undefined || raw.pattern === null || raw.pattern === '' ? undefined : checkPattern(raw.pattern, fieldPath(where, 'pattern'));
  const sparsity = pattern
    ? optionalNumber(raw, 'sparsity', where, pattern.n / pattern.m, { min: 0, below: 1 })
    : optionalNumber(raw, 'sparsity', where, Number.NaN, { min: 0, below: 1 });
  if (Number.isNaN(sparsity)) {
    throw new TopiaryError('E_USAGE', 'is required (a fraction in [0, 1), e.g. 0.5)', { where: fieldPath(where, 'sparsity') });
  }
  if (pattern && Math.abs(sparsity - pattern.n / pattern.m) > 1e-9) {
    throw new TopiaryError('E_USAGE', `${pattern.n}:${pattern.m} fixes the sparsity at ${pattern.n / pattern.m}, got ${sparsity}`, {
      where: fieldPath(where, 'sparsity'),
      hint: 'leave the sparsity out or set it to N/M',
    });
  }
  let owl: OwlOptions | undefined;
  const rawOwl = raw.owl;
  if (isRecord(rawOwl)) {
    owl = {
      M: optionalNumber(rawOwl, 'M', fieldPath(where, 'owl'), OWL_DEFAULTS.M, { above: 0 }),
      lambda: optionalNumber(rawOwl, 'lambda', fieldPath(where, 'owl'), OWL_DEFAULTS.lambda, { min: 0, below: 0.5 }),
    };
  } else if (optionalBoolean(raw, 'owl', where, false)) {
    owl = {
      M: optionalNumber(raw, 'owlM', where, OWL_DEFAULTS.M, { above: 0 }),
      lambda: optionalNumber(raw, 'owlLambda', where, OWL_DEFAULTS.lambda, { min: 0, below: 0.5 }),
    };
  }
  if (owl && pattern) {
    throw new TopiaryError('E_USAGE', 'OWL gives each block its own sparsity; an N:M pattern fixes it for all', {
      where: fieldPath(where, 'owl'),
      hint: 'use --owl with unstructured sparsity only',
    });
  }
  return {
    sparsity,
    pattern,
    scope: optionalOneOf(raw, 'scope', where, ['row', 'layer'] as const, defaultScope),
    owl,
    saliency: optionalString(raw, 'saliency', where) ?? defaultSaliency,
    layers: raw.layers === undefined ? undefined : parseLayers(raw.layers, fieldPath(where, 'layers')),
    batchSize: optionalNumber(raw, 'batchSize', where, 8, { min: 1, integer: true }),
  };
}
