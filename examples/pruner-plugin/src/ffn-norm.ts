/**
 * ffn-norm: structured pruning by weight norm, with no calibration data and no gradients.
 *
 * Every FFN intermediate channel of a Llama block is one coupled group: row c of gate_proj, row c of up_proj and
 * column c of down_proj (the model's `ffn-channel` group). Its score is the norm of those weights taken together
 * (L2 by default, `norm: l1` for the sum of magnitudes). In every block of the range the `channelRatio` fraction of
 * channels with the smallest scores is removed; with `headRatio` > 0 the query heads with the smallest norm of their
 * q rows and o columns go too. The groups are masked, then `slim()` returns a physically smaller model that
 * computes exactly what the masked model computes.
 *
 * Only `@topiary/kernel` is imported: the model is reached through the kernel's `CausalLM` interface
 * (`groups`, `readWeight`, `maskGroups`, `slim`), as any third-party pruner would.
 */
import {
  parseBlockRange,
  TopiaryError,
  z,
  type CausalLM,
  type GroupKind,
  type GroupMember,
  type OptionsOf,
  type ParameterGroup,
  type PruneContext,
  type PruneResult,
  type Pruner,
} from '@topiary/kernel';

const ratio = (lo: 'open' | 'closed') => (lo === 'open' ? z.number().gt(0).lt(1) : z.number().min(0).lt(1));

/** The options, declared once: type, validation with paths, defaults, `--help` lines and flags all come from here. */
export const ffnNormOptions = z
  .object({
    channelRatio: ratio('open').meta({
      description: 'fraction of the FFN channels of each block to remove, those with the smallest weight norm, in (0,1)',
      valueName: 'r',
    }),
    headRatio: ratio('closed')
      .default(0)
      .meta({ description: 'fraction of the attention (query) heads of each block to remove, by the norm of their q rows and o columns, in [0,1)', valueName: 'r' }),
    norm: z.enum(['l2', 'l1']).default('l2').meta({ description: 'how the weights of a channel or head add up to its score: l2 (Euclidean norm) or l1 (sum of |w|)' }),
    layers: z
      .string()
      .refine((text) => parseBlockRange(text) !== null, {
        message: 'must be a block range START:END (END exclusive) or A-B (inclusive)',
        params: { hint: 'e.g. 1:4 for blocks 1, 2 and 3; 2: for block 2 to the last' },
      })
      .optional()
      .meta({ description: 'blocks to prune, START:END (END exclusive) or A-B; default: every block', valueName: 'START:END' }),
  })
  .strict();

export type FfnNormOptions = OptionsOf<typeof ffnNormOptions>;

/** Per block: FFN channels and heads before → after. */
export interface LayerRemoval {
  layer: number;
  ffnChannels: [number, number];
  heads: [number, number];
}

type Norm = FfnNormOptions['norm'];

/** Σ |w|^p over one member's slice (p = 2 for l2, 1 for l1); weights are row-major, [out, in] for a linear layer. */
function memberPower(data: Float32Array, shape: readonly number[], member: GroupMember, norm: Norm): number {
  const power = norm === 'l2' ? (x: number) => x * x : Math.abs;
  let sum = 0;
  if (shape.length === 1) {
    for (const i of member.indices) sum += power(data[i]!);
    return sum;
  }
  if (shape.length !== 2) throw new TopiaryError('E_INTERNAL', `ffn-norm scores 1-D and 2-D weights, ${member.param} has shape [${shape.join(', ')}]`);
  const [rows, cols] = shape as [number, number];
  for (const i of member.indices) {
    if (member.axis === 0) {
      for (let c = 0, base = i * cols; c < cols; c++) sum += power(data[base + c]!);
    } else {
      for (let r = 0; r < rows; r++) sum += power(data[r * cols + i]!);
    }
  }
  return sum;
}

/**
 * The norm of every group's weights, all its members taken together (l2: √Σw², l1: Σ|w|).
 * Each weight is read from the model once.
 */
export function groupNorms(model: CausalLM, groups: readonly ParameterGroup[], norm: Norm = 'l2'): Float64Array {
  const params = model.parameters();
  const weights = new Map<string, { data: Float32Array; shape: readonly number[] }>();
  const weight = (param: string) => {
    let w = weights.get(param);
    if (!w) {
      const variable = params.get(param);
      if (!variable) throw new TopiaryError('E_INTERNAL', `the model has no parameter ${param}`);
      w = { data: model.readWeight(param), shape: variable.shape };
      weights.set(param, w);
    }
    return w;
  };
  return Float64Array.from(groups, (g) => {
    const total = g.members.reduce((s, m) => {
      const w = weight(m.param);
      return s + memberPower(w.data, w.shape, m, norm);
    }, 0);
    return norm === 'l2' ? Math.sqrt(total) : total;
  });
}

/** Blocks [start, end) to prune; default every block. */
export function layerRange(text: string | undefined, numBlocks: number): { start: number; end: number } {
  if (text === undefined) return { start: 0, end: numBlocks };
  const spec = parseBlockRange(text)!; // the schema checked the syntax
  const start = spec.start;
  const end = spec.end ?? numBlocks;
  if (start >= end || end > numBlocks) {
    throw new TopiaryError('E_USAGE', `layer range ${JSON.stringify(text)} is not a non-empty range of the model's ${numBlocks} blocks`, {
      where: 'layers',
      hint: `use START:END with 0 <= START < END <= ${numBlocks}`,
    });
  }
  return { start, end };
}

/** The `n` lowest-scoring groups (ties: lower index first), never all of them. */
function lowest(groups: readonly ParameterGroup[], scores: ReadonlyMap<string, number>, fraction: number): ParameterGroup[] {
  const n = Math.min(Math.round(fraction * groups.length), groups.length - 1);
  if (n <= 0) return [];
  return [...groups].sort((a, b) => scores.get(a.id)! - scores.get(b.id)! || a.index - b.index).slice(0, n);
}

/** Which groups ffn-norm removes from `model` (no pruning): ids per block, and the sizes before → after. */
export function selectGroups(model: CausalLM, options: FfnNormOptions): { remove: string[]; perLayer: LayerRemoval[]; range: { start: number; end: number } } {
  const range = layerRange(options.layers, model.numBlocks);
  const kinds: GroupKind[] = options.headRatio > 0 ? ['ffn-channel', 'head'] : ['ffn-channel'];
  const candidates = model.groups(kinds).filter((g) => g.layer !== null && g.layer >= range.start && g.layer < range.end);
  const norms = groupNorms(model, candidates, options.norm);
  const scores = new Map(candidates.map((g, i) => [g.id, norms[i]!] as const));
  const remove: string[] = [];
  const perLayer: LayerRemoval[] = [];
  for (let layer = range.start; layer < range.end; layer++) {
    const ffn = candidates.filter((g) => g.layer === layer && g.kind === 'ffn-channel');
    const heads = candidates.filter((g) => g.layer === layer && g.kind === 'head');
    const goFfn = lowest(ffn, scores, options.channelRatio);
    const goHeads = lowest(heads, scores, options.headRatio);
    remove.push(...goFfn.map((g) => g.id), ...goHeads.map((g) => g.id));
    const nHeads = model.config.layers?.[layer]?.nHeads ?? model.config.nHeads;
    perLayer.push({ layer, ffnChannels: [ffn.length, ffn.length - goFfn.length], heads: [nHeads, nHeads - goHeads.length] });
  }
  return { remove, perLayer, range };
}

export const ffnNormPruner: Pruner<typeof ffnNormOptions> = Object.freeze({
  name: 'ffn-norm',
  description: 'FFN-norm: remove the FFN channels (and optionally heads) with the smallest weight norm; structured, no data needed',
  granularity: 'group' as const,
  needsCalibration: false,
  options: ffnNormOptions,
  async prune(model: CausalLM, options: FfnNormOptions, ctx: PruneContext): Promise<PruneResult> {
    const started = performance.now();
    ctx.signal?.throwIfAborted();
    const before = model.parameterCount();
    const { remove, perLayer, range } = selectGroups(model, options);
    ctx.signal?.throwIfAborted();
    model.maskGroups(remove);
    const slim = model.slim();
    const after = slim.parameterCount();
    ctx.events.log('info', `ffn-norm removed ${remove.length} groups: ${before} -> ${after} parameters`);
    return {
      model: slim,
      report: {
        method: 'ffn-norm',
        parametersBefore: before,
        parametersAfter: after,
        seconds: (performance.now() - started) / 1000,
        layers: [],
        details: {
          norm: options.norm,
          channelRatio: options.channelRatio,
          headRatio: options.headRatio,
          layerRange: `${range.start}:${range.end}`,
          removedParameters: before - after,
          perLayer,
          removedGroups: remove,
        },
      },
    };
  },
});
