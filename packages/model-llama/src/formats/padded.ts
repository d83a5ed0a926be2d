/**
 * Padding a non-uniform (width-pruned) model back to a plain, uniform LlamaForCausalLM: every layer gets the largest
 * per-layer sizes, and what a layer lacks is zeros — query heads zero q rows and o columns, kv heads zero k/v rows,
 * FFN channels zero gate/up rows and down columns. A zero o column (down column) removes that head's (channel's)
 * contribution to the residual stream exactly, so the padded model computes the same function; a layer left with
 * no heads or no channels gets an all-zero o_proj or down_proj, whose residual contribution is exactly 0.
 * Kept query heads are placed in the slots of the kv group their kv head occupies, so the standard GQA rule
 * (head h reads kv head h / (nHeads / nKvHeads)) reproduces each layer's head→kv map.
 */
import { TopiaryError } from '@topiary/kernel';
import { headKvMap, layerShape, makeConfig, keptFields, parameterShapes, type LlamaConfig } from '../config.js';
import { biasName, inputNormName, linearName, postNormName } from '../names.js';

export interface PaddedModel {
  config: LlamaConfig;
  weights: Map<string, Float32Array>;
}

/** The uniform sizes a config pads to: the most kv heads, the most query heads per kv head, the widest FFN. */
export function paddedSizes(config: LlamaConfig): { nHeads: number; nKvHeads: number; hiddenDim: number } {
  let nKvHeads = 0;
  let perKv = 0;
  let hiddenDim = 0;
  for (let i = 0; i < config.nLayers; i++) {
    const l = layerShape(config, i);
    nKvHeads = Math.max(nKvHeads, l.nKvHeads);
    hiddenDim = Math.max(hiddenDim, l.hiddenDim);
    const counts = new Array<number>(l.nKvHeads).fill(0);
    for (const k of headKvMap(l)) counts[k]!++;
    perKv = Math.max(perKv, ...counts, 0);
  }
  return { nHeads: nKvHeads * perKv, nKvHeads, hiddenDim };
}

/** Pad `config`/`weights` to a uniform model that computes the same logits (see the module comment). */
export function padToUniform(config: LlamaConfig, weights: ReadonlyMap<string, Float32Array>): PaddedModel {
  const { nHeads, nKvHeads, hiddenDim } = paddedSizes(config);
  if (config.nLayers > 0 && (nHeads === 0 || hiddenDim === 0)) {
    throw new TopiaryError('E_USAGE', `cannot pad to a uniform model: no layer keeps any ${nHeads === 0 ? 'attention head' : 'FFN channel'}`, {
      where: '--format',
      hint: 'a uniform LlamaForCausalLM needs at least one head and one FFN channel per layer; export --format safetensors instead',
    });
  }
  const out = makeConfig({ ...keptFields(config), dim: config.dim, nLayers: config.nLayers, nHeads, nKvHeads, headDim: config.headDim, hiddenDim }, 'padded');
  const { dim, headDim } = config;
  const group = nHeads / nKvHeads;
  const padded = new Map<string, Float32Array>();
  const get = (name: string): Float32Array => {
    const w = weights.get(name);
    if (!w) throw new TopiaryError('E_INTERNAL', `no weight "${name}" to pad`, { where: name });
    return w;
  };
  /** Copy rows of a [rows, cols] matrix into the given destination rows of a [outRows, cols] one. */
  const rowsInto = (src: Float32Array, cols: number, outRows: number, dest: readonly number[]): Float32Array => {
    const o = new Float32Array(outRows * cols);
    dest.forEach((d, r) => o.set(src.subarray(r * cols, (r + 1) * cols), d * cols));
    return o;
  };
  /** Copy columns of a [rows, cols] matrix into the given destination columns of a [rows, outCols] one. */
  const colsInto = (src: Float32Array, rows: number, cols: number, outCols: number, dest: readonly number[]): Float32Array => {
    const o = new Float32Array(rows * outCols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) o[r * outCols + dest[c]!] = src[r * cols + c]!;
    return o;
  };
  /** Rows of whole heads (headDim rows each) at the given head slots. */
  const headRows = (slots: readonly number[]): number[] => slots.flatMap((s) => Array.from({ length: headDim }, (_, k) => s * headDim + k));

  for (const [name] of parameterShapes(config)) if (!/^model\.layers\.\d+\./.test(name)) padded.set(name, get(name));
  for (let i = 0; i < config.nLayers; i++) {
    const l = layerShape(config, i);
    const map = headKvMap(l);
    // kv head g keeps slot g; each query head takes the next free slot of its kv head's group
    const used = new Array<number>(l.nKvHeads).fill(0);
    const qSlots = map.map((g) => g * group + used[g]!++);
    const kvSlots = Array.from({ length: l.nKvHeads }, (_, g) => g);
    padded.set(inputNormName(i), get(inputNormName(i)));
    padded.set(postNormName(i), get(postNormName(i)));
    padded.set(linearName(i, 'q'), rowsInto(get(linearName(i, 'q')), dim, nHeads * headDim, headRows(qSlots)));
    padded.set(linearName(i, 'k'), rowsInto(get(linearName(i, 'k')), dim, nKvHeads * headDim, headRows(kvSlots)));
    padded.set(linearName(i, 'v'), rowsInto(get(linearName(i, 'v')), dim, nKvHeads * headDim, headRows(kvSlots)));
    if (config.attentionBias) {
      padded.set(biasName(i, 'q'), rowsInto(get(biasName(i, 'q')), 1, nHeads * headDim, headRows(qSlots)));
      padded.set(biasName(i, 'k'), rowsInto(get(biasName(i, 'k')), 1, nKvHeads * headDim, headRows(kvSlots)));
      padded.set(biasName(i, 'v'), rowsInto(get(biasName(i, 'v')), 1, nKvHeads * headDim, headRows(kvSlots)));
    }
    padded.set(linearName(i, 'o'), colsInto(get(linearName(i, 'o')), dim, l.nHeads * headDim, nHeads * headDim, headRows(qSlots)));
    const channels = Array.from({ length: l.hiddenDim }, (_, c) => c);
    padded.set(linearName(i, 'gate'), rowsInto(get(linearName(i, 'gate')), dim, hiddenDim, channels));
    padded.set(linearName(i, 'up'), rowsInto(get(linearName(i, 'up')), dim, hiddenDim, channels));
    padded.set(linearName(i, 'down'), colsInto(get(linearName(i, 'down')), dim, l.hiddenDim, hiddenDim, channels));
  }
  for (const [name, shape] of parameterShapes(out)) {
    const w = padded.get(name);
    const n = shape.reduce((a, d) => a * d, 1);
    if (!w || w.length !== n) throw new TopiaryError('E_INTERNAL', `padded weight "${name}" has ${w?.length ?? 0} values, expected ${n}`, { where: name });
  }
  return { config: out, weights: padded };
}
