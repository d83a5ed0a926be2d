/**
 * Structured pruning of a streamed model: group masks recorded, then `slim()` without loading the model whole.
 *
 * A streamed `LlamaModel` refuses `maskGroups` and `slim` (they touch every weight at once). `SlimmableStream` is a
 * streamed model that accepts both: `maskGroups` only records the groups, and `slim()` returns another streamed model
 * whose tensors are cut from the checkpoint when they are read, by the same plan (`slimPlan`) the in-memory
 * `slim()` follows — so the slim model's weights are the in-memory slim model's, value for value. Slimming a slim
 * model composes the plans: every view reads the original checkpoint, never another view.
 *
 * The masks take effect in `slim()`: until then the model computes (and `readWeight` returns) the unmasked weights.
 * LLM-Pruner and depth pruning mask and slim at once, so they never see the difference.
 */
import { TopiaryError } from '@topiary/kernel';
import { parameterShapes, type LlamaConfig } from './config.js';
import type { StorageDtype } from './formats/dtype.js';
import type { WeightSource } from './formats/source.js';
import { cutTake, slimGroupMapping, slimPlan, type SlimTake } from './groups.js';
import { openWeights } from './io.js';
import { LlamaModel, type ModelOptions } from './model.js';
import { EMBED, LM_HEAD } from './names.js';

/** A checkpoint seen through a slimming plan: each tensor is cut from the checkpoint's when it is read. */
class SlimSource implements WeightSource {
  readonly path: string;
  readonly dtype: StorageDtype;
  private readonly rootShapes: Map<string, number[]>;
  /** The block matrix `readRows` serves rows from (one at a time). */
  private lastCut: { name: string; data: Float32Array } | undefined;

  constructor(
    private readonly root: WeightSource,
    private readonly takes: ReadonlyMap<string, SlimTake>,
    readonly config: LlamaConfig,
  ) {
    this.path = root.path;
    this.dtype = root.dtype;
    this.rootShapes = parameterShapes(root.config);
  }

  private take(name: string): SlimTake {
    const t = this.takes.get(name);
    if (!t) throw new TopiaryError('E_INTERNAL', `the slim model has no tensor "${name}"`, { file: this.path, where: name });
    return t;
  }

  read(name: string): Float32Array {
    const t = this.take(name);
    return cutTake(t, this.root.read(t.from), this.rootShapes.get(t.from)!);
  }

  /**
   * Rows of a 2-D tensor. The embedding and the head (the large ones) are read by rows from the checkpoint, a
   * contiguous run at a time; a block's matrix is cut whole once and its rows served from that cut while the caller
   * walks through it (a writer encodes a tensor row chunk by row chunk) — a checkpoint need not read block tensors
   * by rows (llama2.c's cannot).
   */
  readRows(name: string, start: number, count: number): Float32Array {
    const t = this.take(name);
    const shape = this.rootShapes.get(t.from)!;
    if (t.cols === null) throw new TopiaryError('E_INTERNAL', `readRows: "${name}" is not a matrix`, { file: this.path, where: name });
    const cols = t.cols.length;
    if (t.from !== EMBED && t.from !== LM_HEAD) {
      if (this.lastCut?.name !== name) this.lastCut = { name, data: this.read(name) };
      return this.lastCut.data.slice(start * cols, (start + count) * cols);
    }
    const rows = t.rows.slice(start, start + count);
    const contiguous = rows.every((r, k) => r === rows[0]! + k);
    if (!contiguous) return cutTake({ ...t, rows }, this.root.read(t.from), shape);
    return cutTake({ from: t.from, rows: rows.map((_, k) => k), cols: t.cols }, this.root.readRows(t.from, rows[0]!, rows.length), [rows.length, shape[1]!]);
  }

  close(): void {
    this.lastCut = undefined;
    this.root.close();
  }
}

/** `outer` cut out of a tensor that was itself cut by `inner`: the same cut, from `inner`'s source. */
function compose(outer: SlimTake, inner: SlimTake): SlimTake {
  return {
    from: inner.from,
    rows: outer.rows.map((r) => inner.rows[r]!),
    cols: outer.cols === null || inner.cols === null ? null : outer.cols.map((c) => inner.cols![c]!),
  };
}

export class SlimmableStream extends LlamaModel {
  /** Groups masked since the model was opened (or slimmed): what `slim()` removes. */
  private readonly pending = new Set<string>();

  private constructor(
    private readonly root: WeightSource,
    /** How this model's tensors are cut from `root` (null: they are `root`'s own). */
    private readonly takes: ReadonlyMap<string, SlimTake> | null,
    config: LlamaConfig,
    private readonly where: string,
    private readonly modelOptions: ModelOptions,
  ) {
    super(config, takes ? new SlimSource(root, takes, config) : root, where, { ...modelOptions, residency: 'block' });
  }

  /** Open a checkpoint streamed (`residency: 'block'`), headers only, as `loadModel` does. */
  static open(path: string, options: Omit<ModelOptions, 'residency'> = {}): SlimmableStream {
    const source = openWeights(path);
    return new SlimmableStream(source, null, source.config, path, options);
  }

  /** Record groups to remove (validated against `groups()`); their weights are cut away by `slim()`. */
  override maskGroups(groupIds: readonly string[]): void {
    const known = new Set(this.groups().map((g) => g.id));
    for (const id of groupIds) {
      if (!known.has(id)) throw new TopiaryError('E_USAGE', `no parameter group "${id}" in this model`, { where: 'groupIds', hint: 'ids come from model.groups()' });
    }
    for (const id of groupIds) this.pending.add(id);
  }

  override maskedGroups(): readonly string[] {
    return [...this.pending];
  }

  override slimMapping(): ReadonlyMap<string, string> {
    return slimGroupMapping(this.config, this.pending);
  }

  /** A streamed model without the masked groups, cut from the checkpoint as its tensors are read. */
  override slim(): SlimmableStream {
    const plan = slimPlan(this.config, this.pending);
    const takes = new Map([...plan.takes].map(([name, t]) => [name, this.takes ? compose(t, this.takes.get(t.from)!) : t] as const));
    return new SlimmableStream(this.root, takes, plan.config, this.where, this.modelOptions);
  }
}
