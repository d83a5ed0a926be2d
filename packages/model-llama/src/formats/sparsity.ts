/**
 * Sparsity metadata written into config.json under `topiary_sparsity` (documented in the package README):
 * `{ "pattern": "2:4" | "4:8" | null, "layers": { "<linear weight name>": fraction of exact zeros } }`.
 * `pattern` is N:M when every linear weight of the blocks has at least M−N zeros in each run of M consecutive input
 * weights of a row (N of every M kept); `layers` lists every block linear weight. The key is written when a pattern
 * holds or some linear weight has at least `NOTABLE_SPARSITY` zeros; dense models get no key.
 */
import { parameterShapes, type LlamaConfig } from '../config.js';

export const TOPIARY_SPARSITY_KEY = 'topiary_sparsity';
/** A linear weight with at least this fraction of exact zeros makes the metadata worth writing. */
export const NOTABLE_SPARSITY = 0.01;
/** The N:M patterns recognised, strictest first (2:4 implies 4:8). */
export const NM_PATTERNS: ReadonlyArray<readonly [number, number]> = [
  [1, 4],
  [2, 4],
  [4, 8],
];

export interface SparsityInfo {
  pattern: string | null;
  layers: Record<string, number>;
}

const LINEAR = /^model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)\.weight$/;

/** Whether every row of the [rows, cols] matrix keeps at most n of each m consecutive weights. */
export function followsNM(data: Float32Array, rows: number, cols: number, n: number, m: number): boolean {
  if (cols % m !== 0) return false;
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c += m) {
      let nonzero = 0;
      for (let k = 0; k < m; k++) if (data[base + c + k] !== 0) nonzero++;
      if (nonzero > n) return false;
    }
  }
  return true;
}

/** What one linear weight contributes: its fraction of zeros and which N:M patterns it follows. */
export interface LayerSparsity {
  zeros: number;
  /** `n:m` for each pattern of NM_PATTERNS the weight follows. */
  patterns: string[];
}

/** Whether `name` is a block's linear weight (what the metadata describes). */
export function isLinearWeight(name: string): boolean {
  return LINEAR.test(name);
}

export function layerSparsity(data: Float32Array, rows: number, cols: number): LayerSparsity {
  let zeros = 0;
  for (let i = 0; i < data.length; i++) if (data[i] === 0) zeros++;
  return sparsityOfCounts(zeros, data.length, new Set(NM_PATTERNS.filter(([n, m]) => followsNM(data, rows, cols, n, m)).map(([n, m]) => `${n}:${m}`)));
}

/** A layer's contribution from its zero count and the patterns it follows (a writer counts them chunk by chunk). */
export function sparsityOfCounts(zeros: number, total: number, follows: ReadonlySet<string>): LayerSparsity {
  const s = total === 0 ? 0 : zeros / total;
  return { zeros: Math.round(s * 1e6) / 1e6, patterns: NM_PATTERNS.map(([n, m]) => `${n}:${m}`).filter((p) => follows.has(p)) };
}

/**
 * The metadata from every linear weight's contribution (a streamed writer adds them block by block; `analyseSparsity`
 * all at once): undefined when no weight has NOTABLE_SPARSITY zeros.
 */
export function combineSparsity(layers: ReadonlyMap<string, LayerSparsity>): SparsityInfo | undefined {
  if (layers.size === 0) return undefined;
  const fractions: Record<string, number> = {};
  let notable = false;
  for (const [name, l] of layers) {
    fractions[name] = l.zeros;
    if (l.zeros >= NOTABLE_SPARSITY) notable = true;
  }
  if (!notable) return undefined;
  const all = [...layers.values()];
  const hit = NM_PATTERNS.find(([n, m]) => all.every((l) => l.patterns.includes(`${n}:${m}`)));
  return { pattern: hit ? `${hit[0]}:${hit[1]}` : null, layers: fractions };
}

/** The sparsity of the block linear weights, or undefined when the model is dense. */
export function analyseSparsity(config: LlamaConfig, weights: ReadonlyMap<string, Float32Array>): SparsityInfo | undefined {
  const layers = new Map<string, LayerSparsity>();
  for (const [name, shape] of parameterShapes(config)) {
    if (!LINEAR.test(name)) continue;
    const data = weights.get(name);
    if (!data || data.length === 0) continue;
    layers.set(name, layerSparsity(data, shape[0]!, shape[1]!));
  }
  return combineSparsity(layers);
}
