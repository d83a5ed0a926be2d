/**
 * The options every post-training pruner shares, validated once (recipes and flags go through here). Method-specific
 * options (SparseGPT's block size and dampening) are validated by the method on top of these.
 */
import {
  checkPattern,
  checkNumber,
  fieldPath,
  isRecord,
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

/** Parse `0,2,4`, `1-3` or an array of integers into sorted unique block indices (range checked against the model later). */
export function parseLayers(value: unknown, where: string): number[] {
  const parts: unknown[] = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : [value];
  const out = new Set<number>();
  for (const part of parts) {
    const text = String(part).trim();
    // the structured pruners' START:END form (END exclusive) is accepted too, so `--layers` reads the same everywhere
    const slice = /^(\d+):(\d+)$/.exec(text);
    if (slice) {
      const a = Number(slice[1]);
      const b = Number(slice[2]);
      if (b <= a) throw new TopiaryError('E_USAGE', `layer range ${text} is empty (END is exclusive)`, { where });
      for (let i = a; i < b; i++) out.add(i);
      continue;
    }
    const range = /^(\d+)-(\d+)$/.exec(text);
    if (range) {
      const a = Number(range[1]);
      const b = Number(range[2]);
      if (b < a) throw new TopiaryError('E_USAGE', `layer range ${text} is empty`, { where });
      for (let i = a; i <= b; i++) out.add(i);
    } else {
      out.add(checkNumber(text, where, { min: 0, integer: true }));
    }
  }
  return [...out].sort((a, b) => a - b);
}

export function validatePostTraining(raw: Raw, where: string, defaultSaliency: string): PostTrainingOptions {
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
    scope: optionalOneOf(raw, 'scope', where, ['row', 'layer'] as const, 'row'),
    owl,
    saliency: optionalString(raw, 'saliency', where) ?? defaultSaliency,
    layers: raw.layers === undefined ? undefined : parseLayers(raw.layers, fieldPath(where, 'layers')),
    batchSize: optionalNumber(raw, 'batchSize', where, 8, { min: 1, integer: true }),
  };
}
