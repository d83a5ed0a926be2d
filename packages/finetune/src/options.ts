/**
 * The options of recovery fine-tuning (`topiary finetune` flags and a recipe's `finetune` stage), declared once as
 * a schema: types, defaults, checks with exact paths, JSON Schema, flags and `--help` lines all come from
 * `finetuneOptions`. `resolveFinetuneOptions` validates raw options at the door — the schedule included, through
 * the scheduler plugin the run's container holds — before a model is loaded.
 *
 * Fields that name files carry `.meta({ path: true })` (recipe paths are made absolute from the schema; `keywords`
 * are words that are not paths, like `distillFrom: source`).
 */
import { parseOptions, TopiaryError, z, type DependencyContainer, type OptionsOf } from '@topiary/kernel';
import { defaultWarmup, lrSchedule, lrScheduleFields, refineLrSchedule, type LrSchedule } from './schedule.js';

export const finetuneOptions = z
  .object({
    data: z
      .string()
      .min(1)
      .optional()
      .meta({ description: "text file to fine-tune on, packed into seqlen windows (a recipe stage defaults to the recipe's data.train)", valueName: 'file', path: true }),
    ...lrScheduleFields,
    batchSize: z.number().int().min(1).default(8).meta({ description: 'windows per step' }),
    seqlen: z.number().int().min(2).optional().meta({ description: "window length (default: min(256, the model's context))", valueName: 'L' }),
    weightDecay: z.number().min(0).default(0).meta({ description: 'AdamW decoupled weight decay' }),
    distillFrom: z
      .string()
      .min(1)
      .optional()
      .meta({
        description: 'teacher model (the dense model before pruning) whose logits are matched; in a recipe, `source` is the model it started from',
        valueName: 'path',
        path: true,
        keywords: ['source'],
      }),
    temperature: z.number().positive().default(2).meta({ description: 'distillation temperature' }),
    alpha: z.number().min(0).max(1).default(0.5).meta({ description: 'weight of the distillation term: α·T²·KL + (1 − α)·CE' }),
  })
  .strict()
  .superRefine(refineLrSchedule);

export type FinetuneOptionsInput = z.input<typeof finetuneOptions>;

/** Fine-tuning options after `resolveFinetuneOptions`: defaults applied, `data` and `warmup` settled. */
export type ResolvedFinetuneOptions = Omit<OptionsOf<typeof finetuneOptions>, 'data' | 'warmup'> & LrSchedule & { data: string };

export interface FinetuneDefaults {
  /** The text to fine-tune on when the options name none (a recipe's `data.train`). */
  data?: string;
}

/**
 * Validate fine-tuning options (from a recipe stage or flags) and settle their defaults. Errors are TopiaryErrors
 * naming `where` + the field: E_RECIPE for a bad value, E_PLUGIN_UNKNOWN (at `where.decay`) when the container
 * holds no scheduler for the chosen decay. The result is also the `schedule` `finetune()` takes.
 */
export function resolveFinetuneOptions(raw: unknown, where: string, container: DependencyContainer, defaults: FinetuneDefaults = {}): ResolvedFinetuneOptions {
  const o = parseOptions(finetuneOptions, raw, where);
  const at = (key: string): string => (where === '' ? key : `${where}.${key}`);
  const data = o.data ?? defaults.data;
  if (!data) throw new TopiaryError('E_RECIPE', 'is required (a text file to fine-tune on), or set data.train at the top', { where: at('data') });
  const resolved: ResolvedFinetuneOptions = { ...o, data, warmup: o.warmup ?? defaultWarmup(o.steps) };
  lrSchedule(container, resolved, where); // the scheduler is installed and takes these options
  return resolved;
}
