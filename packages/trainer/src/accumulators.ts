/**
 * Saliency accumulators: fold each step's group scores into a running value per group, so pruning decisions rest
 * on many batches rather than one. Built in: `ema` (exponential moving average, EfficientLLM's smoothing) and `sum`.
 * Swappable: a plugin can bind its own factory under `AccumulatorToken` (a `Symbol.for` key, so it needs only the
 * kernel), and recipes pick it by name.
 */
import { parseOptions, TopiaryError, z, type InjectionToken, type OptionsSchema, type Raw } from '@topiary/kernel';

export interface SaliencyAccumulator {
  readonly name: string;
  /** Fold one observation per group (groups absent from `scores` keep their value). */
  fold(scores: ReadonlyMap<string, number>): void;
  /** The accumulated value of a group, or undefined when it was never observed. */
  value(id: string): number | undefined;
  /** Re-key after the model was slimmed: `mapping` old id → new id; ids not in it are dropped. */
  remap(mapping: ReadonlyMap<string, string>): void;
  /** Plain JSON for checkpoints, and its inverse. */
  toJSON(): unknown;
  load(state: unknown): void;
}

export interface AccumulatorFactory<Schema extends OptionsSchema = OptionsSchema> {
  readonly name: string;
  readonly description: string;
  /** Its options, declared once (validated with paths before training starts). */
  readonly options: Schema;
  create(options: z.output<Schema>): SaliencyAccumulator;
}

/** Validate an accumulator's options against its schema and create it (errors name `where` + the field). */
export function createAccumulator(factory: AccumulatorFactory, raw: Raw, where: string): SaliencyAccumulator {
  return factory.create(parseOptions(factory.options, raw, where));
}

/** DI token for extra accumulator factories (kernel-free: a plugin can create the same symbol). */
export const AccumulatorToken = Symbol.for('topiary:SaliencyAccumulator') as InjectionToken<AccumulatorFactory>;

abstract class MapAccumulator implements SaliencyAccumulator {
  abstract readonly name: string;
  protected values = new Map<string, number>();
  /** Observations folded so far (per group). */
  protected counts = new Map<string, number>();

  abstract combine(previous: number | undefined, observed: number, count: number): number;

  fold(scores: ReadonlyMap<string, number>): void {
    for (const [id, s] of scores) {
      const count = (this.counts.get(id) ?? 0) + 1;
      this.values.set(id, this.combine(this.values.get(id), s, count));
      this.counts.set(id, count);
    }
  }

  value(id: string): number | undefined {
    return this.values.get(id);
  }

  remap(mapping: ReadonlyMap<string, string>): void {
    const values = new Map<string, number>();
    const counts = new Map<string, number>();
    for (const [oldId, newId] of mapping) {
      const v = this.values.get(oldId);
      if (v === undefined) continue;
      values.set(newId, v);
      counts.set(newId, this.counts.get(oldId) ?? 1);
    }
    this.values = values;
    this.counts = counts;
  }

  toJSON(): unknown {
    return { name: this.name, values: [...this.values], counts: [...this.counts] };
  }

  load(state: unknown): void {
    const s = state as { name?: unknown; values?: unknown; counts?: unknown };
    if (s?.name !== this.name || !Array.isArray(s.values) || !Array.isArray(s.counts)) {
      throw new TopiaryError('E_FORMAT', `checkpoint accumulator state is not a "${this.name}" state`, { where: 'state.json: accumulator' });
    }
    this.values = new Map(s.values as [string, number][]);
    this.counts = new Map(s.counts as [string, number][]);
  }
}

/** value ← β·value + (1−β)·observed; the first observation is taken as is (no zero-start bias). */
export class EmaAccumulator extends MapAccumulator {
  readonly name = 'ema';
  constructor(readonly beta: number) {
    super();
  }
  combine(previous: number | undefined, observed: number): number {
    return previous === undefined ? observed : this.beta * previous + (1 - this.beta) * observed;
  }
}

export class SumAccumulator extends MapAccumulator {
  readonly name = 'sum';
  combine(previous: number | undefined, observed: number): number {
    return (previous ?? 0) + observed;
  }
}

const emaOptions = z.object({ beta: z.number().min(0).lt(1).default(0.9).meta({ description: 'weight of the running value: value ← β·value + (1−β)·observed' }) }).strict();

export const emaAccumulator: AccumulatorFactory<typeof emaOptions> = {
  name: 'ema',
  description: 'exponential moving average of the group scores (beta, default 0.9)',
  options: emaOptions,
  create: ({ beta }) => new EmaAccumulator(beta),
};

const sumOptions = z.object({}).strict();

export const sumAccumulator: AccumulatorFactory<typeof sumOptions> = {
  name: 'sum',
  description: 'sum of the group scores since the start (or since the group last changed shape)',
  options: sumOptions,
  create: () => new SumAccumulator(),
};

export const builtinAccumulators: readonly AccumulatorFactory[] = [emaAccumulator as AccumulatorFactory, sumAccumulator as AccumulatorFactory];
