/**
 * The options every post-training pruner shares, declared once as a schema (recipes and flags go through it):
 * sparsity, N:M pattern, comparison scope, OWL, saliency, layers, batch size, with the rules across them. Methods
 * with options of their own (SparseGPT's block size and dampening) build their schema from the same fields and
 * rules (`postTrainingFields`, `checkPostTraining`, `resolvePostTraining`).
 */
import { crossFieldIssue, parseBlockRange, checkNumber, TopiaryError, z, type OptionsOf } from '@topiary/kernel';
import type { ComparisonScope, NMPattern } from './masks.js';
import { OWL_DEFAULTS, type OwlOptions } from './owl.js';

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

/** A TopiaryError thrown by a parser, as an issue of the field being transformed (message and hint kept). */
function issueFrom(e: unknown, input: unknown): z.core.$ZodRawIssue {
  if (!(e instanceof TopiaryError)) throw e;
  return { code: 'custom', message: e.message, input, ...(e.hint ? { params: { hint: e.hint } } : {}) };
}

/** Marks `owl: true`: the thresholds then come from `owlM` / `owlLambda` (resolved across fields). */
const OWL_FROM_FLAGS: Readonly<OwlOptions> = Object.freeze({ ...OWL_DEFAULTS });

/** `N:M` → {n, m} with 0 < N < M; absent, null or empty → undefined. */
const patternField = z
  .union([z.string().regex(/^\s*\d+:\d+\s*$/, { error: 'must look like N:M (e.g. 2:4)' }), z.null()])
  .optional()
  .transform((value, ctx): NMPattern | undefined => {
    if (value === undefined || value === null || value.trim() === '') return undefined;
    const [n, m] = value.trim().split(':').map(Number) as [number, number];
    if (m < 1 || n < 1 || n >= m) {
      ctx.issues.push({ code: 'custom', message: `needs 0 < N < M, got ${n}:${m}`, input: value });
      return z.NEVER;
    }
    return { n, m };
  })
  .meta({ description: 'semi-structured N:M sparsity, e.g. 2:4 or 4:8 (drops N of every M)', valueName: 'N:M' });

const owlObject = z
  .object({
    M: z.number().positive().default(OWL_DEFAULTS.M).meta({ description: 'outlier threshold: a score above M × the layer mean' }),
    lambda: z.number().min(0).lt(0.5).default(OWL_DEFAULTS.lambda).meta({ description: 'sparsity spread around the target' }),
  })
  .strict()
  .meta({ description: 'OWL with its own thresholds: { M, lambda } (recipes; on the command line --owl with --owl-m / --owl-lambda)' });

/** The fields every post-training pruner takes (a zod shape: compose it with the method's own). */
export function postTrainingFields(spec: PostTrainingSpec) {
  return {
    sparsity: z
      .number()
      .min(0)
      .lt(1)
      .optional()
      // absent: NaN until the cross-field rules fill it from the pattern (or say it is required)
      .transform((v) => v ?? Number.NaN)
      .meta({ description: 'fraction of weights to remove in every pruned linear layer, in [0, 1)', valueName: 's' }),
    pattern: patternField,
    scope: z
      .enum(['row', 'layer'])
      .default(spec.defaultScope ?? 'row')
      .meta({ description: 'compare scores within each output row or across the whole weight matrix' }),
    owl: z
      .union([z.boolean(), owlObject])
      .optional()
      .transform((v): OwlOptions | undefined => (v === true ? OWL_FROM_FLAGS : v === false ? undefined : v))
      .meta({ description: 'outlier-weighted layer-wise sparsity (OWL): per-block ratios with the same mean' }),
    owlM: z
      .number()
      .positive()
      .default(OWL_DEFAULTS.M)
      .meta({ description: 'OWL outlier threshold: a score above M × the layer mean', valueName: 'M' }),
    owlLambda: z
      .number()
      .min(0)
      .lt(0.5)
      .default(OWL_DEFAULTS.lambda)
      .meta({ description: 'OWL sparsity spread around the target', valueName: 'λ' }),
    saliency: z
      .string()
      .min(1, { error: 'must be a non-empty string, got ""' })
      .default(spec.defaultSaliency)
      .meta({ description: 'score function (magnitude, wanda, taylor-element, taylor-vector, ... or a saliency plugin)', valueName: 'name' }),
    layers: z
      .union([z.string(), z.number(), z.array(z.union([z.number(), z.string()]))])
      .optional()
      .transform((value, ctx): number[] | undefined => {
        if (value === undefined) return undefined;
        try {
          return parseLayers(value, '');
        } catch (e) {
          ctx.issues.push(issueFrom(e, value));
          return z.NEVER;
        }
      })
      .meta({ description: 'blocks to prune, e.g. 0-3 or 1,2 (default: every block)', valueName: 'list' }),
    batchSize: z
      .number()
      .int()
      .min(0)
      .default(0)
      .meta({
        description:
          "calibration windows per forward call (0: 8, fewer when 8 would need over 64 MiB of one block's temporaries); memory and speed only: Wanda's statistics are the same, SparseGPT's sums may differ in the last bits",
        valueName: 'n',
      }),
  };
}

/** What the cross-field rules read. */
type PostTrainingCore = { sparsity: number; pattern?: NMPattern | undefined; owl?: OwlOptions | undefined; owlM: number; owlLambda: number };

/**
 * The rules across fields, as issues on the field at fault: N:M fixes the sparsity at N/M; the sparsity is required
 * without a pattern; OWL (per-block sparsities) and N:M (one sparsity for all) exclude each other.
 */
export function checkPostTraining(v: PostTrainingCore, ctx: z.RefinementCtx): void {
  const { pattern, sparsity } = v;
  if (!pattern && Number.isNaN(sparsity)) ctx.addIssue(crossFieldIssue(['sparsity'], 'is required (a fraction in [0, 1), e.g. 0.5)'));
  if (pattern && !Number.isNaN(sparsity) && Math.abs(sparsity - pattern.n / pattern.m) > 1e-9) {
    ctx.addIssue(
      crossFieldIssue(['sparsity'], `${pattern.n}:${pattern.m} fixes the sparsity at ${pattern.n / pattern.m}, got ${sparsity}`, 'leave the sparsity out or set it to N/M'),
    );
  }
  if (v.owl && pattern) {
    ctx.addIssue(crossFieldIssue(['owl'], 'OWL gives each block its own sparsity; an N:M pattern fixes it for all', 'use --owl with unstructured sparsity only'));
  }
}

/** The values the rules imply: the sparsity of an N:M pattern; `owl: true` with the `owlM` / `owlLambda` thresholds. */
export function resolvePostTraining<T extends PostTrainingCore>(v: T): T {
  const sparsity = Number.isNaN(v.sparsity) && v.pattern ? v.pattern.n / v.pattern.m : v.sparsity;
  const owl = v.owl === OWL_FROM_FLAGS ? { M: v.owlM, lambda: v.owlLambda } : v.owl;
  return { ...v, sparsity, owl };
}

export interface PostTrainingSpec {
  /** The saliency used when the options name none (`magnitude`, `wanda`). */
  defaultSaliency: string;
  /**
   * Where scores are compared when the options name no scope — per output row for Wanda (its paper's comparison
   * group), one threshold per weight matrix for magnitude (the baseline of the Wanda and SparseGPT papers: Wanda
   * `--prune_method magnitude`, SparseGPT `--gmp`). Default `row`.
   */
  defaultScope?: ComparisonScope;
}

/** The post-training options schema for a pruner with these defaults. */
export function postTrainingOptions(spec: PostTrainingSpec) {
  return z.object(postTrainingFields(spec)).strict().superRefine(checkPostTraining).overwrite(resolvePostTraining);
}

export type PostTrainingSchema = ReturnType<typeof postTrainingOptions>;

/**
 * The validated post-training options: `sparsity` always set (N/M under a pattern), `owl` the thresholds when OWL
 * is on (from `owl: {M, lambda}` or `owl: true` with `owlM` / `owlLambda`), `layers` sorted block indices.
 */
export type PostTrainingOptions = OptionsOf<PostTrainingSchema>;
