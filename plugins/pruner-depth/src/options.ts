/** Options of the `depth` method. */
import { checkNumber, checkOneOf, fieldPath, optionalNumber, rejectUnknownKeys, TopiaryError, type Raw } from '@topiary/kernel';
import { parseLayerSpec, type LayerSpec } from '@topiary/structured-core';
import { BLOCK_SCORES, type BlockScore } from './scores.js';

export type DepthOptions = {
  /** Number of blocks to remove. */
  remove: number;
  score: BlockScore;
  /** Re-score after each removal (default one-shot). */
  iterative: boolean;
  /** Element saliency for `score: taylor` (default `taylor-element`). */
  saliency: string;
  /** Candidate blocks (default: all). */
  layers?: LayerSpec;
  /** Windows per forward batch (0 = as many as fit in 2048 tokens: bounded memory). */
  batchSize: number;
};

export const DEPTH_KEYS = ['remove', 'score', 'iterative', 'saliency', 'layers', 'batchSize'] as const;

function at(where: string, key: string, flag: string): string {
  return where === '' || where.startsWith('--') ? `--${flag}` : fieldPath(where, key);
}

export function validateDepth(raw: Raw, where: string): DepthOptions {
  rejectUnknownKeys(raw, where, DEPTH_KEYS);
  if (raw.remove === undefined) {
    throw new TopiaryError('E_USAGE', 'is required: the number of blocks to remove, e.g. 1', { where: at(where, 'remove', 'remove') });
  }
  const remove = checkNumber(raw.remove, at(where, 'remove', 'remove'), { min: 1, integer: true });
  const score = raw.score === undefined ? 'block-influence' : checkOneOf(raw.score, at(where, 'score', 'score'), BLOCK_SCORES);
  const iterative = raw.iterative === true || raw.iterative === 'true';
  const saliency = raw.saliency === undefined ? 'taylor-element' : String(raw.saliency);
  const layers = raw.layers === undefined || raw.layers === null || raw.layers === '' ? undefined : parseLayerSpec(String(raw.layers), at(where, 'layers', 'layers'));
  const batchSize = optionalNumber(raw, 'batchSize', where === '' ? '--batch-size' : where, 0, { min: 0, integer: true });
  return { remove, score, iterative, saliency, ...(layers ? { layers } : {}), batchSize };
}
