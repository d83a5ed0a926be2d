/** Options of the `llm-pruner` method, from a recipe stage or CLI flags. */
import { checkNumber, checkOneOf, fieldPath, optionalNumber, rejectUnknownKeys, TopiaryError, type GroupAggregation, type Raw } from '@topiary/kernel';
import { checkAggregation, parseLayerSpec, type LayerSpec, type Ranking } from '@topiary/structured-core';

export type LlmPrunerOptions = {
  /** Fraction of the whole model's parameters to remove, in (0, 1). */
  ratio: number;
  /** Saliency criterion by name (default `taylor-element`). */
  saliency: string;
  aggregation: GroupAggregation;
  ranking: Ranking;
  /** Blocks that may be pruned; default: all but the first and the last. */
  layers?: LayerSpec;
  /** Calibration windows per gradient batch (0 = as many as fit in 2048 tokens: bounded memory). */
  batchSize: number;
  /** Attention unit: `auto` prunes KV groups when the model shares KV heads (GQA), single heads otherwise. */
  attention: 'auto' | 'head' | 'kv-group';
};

export const LLM_PRUNER_KEYS = ['ratio', 'saliency', 'aggregation', 'ranking', 'global', 'layers', 'batchSize', 'attention'] as const;

/** Flags for CLI use (`where` empty or a flag), dotted paths for recipes. */
function at(where: string, key: string, flag: string): string {
  return where === '' || where.startsWith('--') ? `--${flag}` : fieldPath(where, key);
}

export function validateLlmPruner(raw: Raw, where: string): LlmPrunerOptions {
  rejectUnknownKeys(raw, where, LLM_PRUNER_KEYS);
  if (raw.ratio === undefined) {
    throw new TopiaryError('E_USAGE', 'is required: the fraction of the model parameters to remove, e.g. 0.2', { where: at(where, 'ratio', 'ratio') });
  }
  const ratio = checkNumber(raw.ratio, at(where, 'ratio', 'ratio'), { above: 0, below: 1 });
  const saliency = raw.saliency === undefined ? 'taylor-element' : String(raw.saliency);
  const aggregation = raw.aggregation === undefined ? 'sum' : checkAggregation(raw.aggregation, at(where, 'aggregation', 'aggregation'));
  let ranking: Ranking = raw.ranking === undefined ? 'per-layer' : checkOneOf(raw.ranking, at(where, 'ranking', 'ranking'), ['per-layer', 'global'] as const);
  if (raw.global === true || raw.global === 'true') ranking = 'global';
  const layers = raw.layers === undefined || raw.layers === null || raw.layers === '' ? undefined : parseLayerSpec(String(raw.layers), at(where, 'layers', 'layers'));
  const batchSize = optionalNumber(raw, 'batchSize', where === '' ? '--batch-size' : where, 0, { min: 0, integer: true });
  const attention = raw.attention === undefined ? 'auto' : checkOneOf(raw.attention, at(where, 'attention', 'attention'), ['auto', 'head', 'kv-group'] as const);
  return { ratio, saliency, aggregation, ranking, ...(layers ? { layers } : {}), batchSize, attention };
}
