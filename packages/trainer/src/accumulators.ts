/**
 * Saliency accumulators: fold each step's group scores into a running value per group, so pruning decisions rest
 * on many batches rather than one. Built in: `ema` (exponential moving average, EfficientLLM's smoothing) and `sum`.
 * Swappable: a plugin can bind its own factory under `AccumulatorToken` (a `Symbol.for` key, so it needs only the
 * kernel), and recipes pick it by name.
 */
import {
  optionalNumber,
  rejectUnknownKeys,
  TopiaryError,
  type InjectionToken,
  type Raw,
} from '@topiary/kernel';

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

export interface AccumulatorFactory {
  readonly name: string;
  readonly description: string;
  create(options: Raw, where: string): SaliencyAccumulator;
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

export const emaAccumulator: AccumulatorFactory = {
  name: 'ema',
  description: 'exponential moving average of the group scores (beta, default 0.9)',
  create(options, where) {
    rejectUnknownKeys(options, where, ['beta']);
    return new EmaAccumulator(optionalNumber(options, 'beta', where, 0.9, { min: 0, below: 1 }));
  },
};

export const sumAccumulator: AccumulatorFactory = {
  name: 'sum',
  description: 'sum of the group scores since the start (or since the group last changed shape)',
  create(options, where) {
    rejectUnknownKeys(options, where, []);
    return new SumAccumulator();
  },
};

export const builtinAccumulators: readonly AccumulatorFactory[] = [emaAccumulator, sumAccumulator];
