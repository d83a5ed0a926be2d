/** The causal language model seen by pruners, trainers and evaluators, and the coupled parameter groups it exposes. */
import type { Scalar, Tensor, Tensor2D, Tensor3D, Variable } from '@tensorflow/tfjs-core';

/** Per-layer sizes; present for non-uniform (pruned) architectures. */
export interface LayerShape {
  nHeads: number;
  nKvHeads: number;
  hiddenDim: number;
  /** For each query head, the index of the kv head it reads (needed once GQA groups lose heads unevenly). */
  headKvMap?: readonly number[];
}

export interface ModelConfig {
  architecture: 'llama';
  vocabSize: number;
  /** Hidden size (residual stream width). */
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** FFN intermediate size. */
  hiddenDim: number;
  maxSeqLen: number;
  normEps: number;
  ropeTheta: number;
  tiedEmbeddings: boolean;
  bosId: number;
  eosId: number;
  /** Per-layer sizes when they differ between layers (Topiary's documented config.json extension). */
  layers?: readonly LayerShape[];
}

export type GroupKind = 'head' | 'kv-group' | 'ffn-channel' | 'hidden-channel' | 'block';

/** One slice of one parameter: `indices` along `axis` belong to the group. */
export interface GroupMember {
  param: string;
  axis: number;
  indices: readonly number[];
}

/** The minimal coupled unit that can be removed. Computed once by the model; every pruner uses it. */
export interface ParameterGroup {
  /** Stable id, e.g. `layers.3.head.5`, `layers.0.ffn.17`, `hidden.12`, `layers.4`. */
  id: string;
  kind: GroupKind;
  /** Block index, or null for hidden channels (which span every layer). */
  layer: number | null;
  /** Index of the unit within its layer (head number, channel number, ...). */
  index: number;
  members: readonly GroupMember[];
  /** Number of parameters the group removes. */
  size: number;
  /**
   * For a query head: the id of the kv-group whose k/v rows it reads. When several heads share one kv head, the
   * group holds only the head's q rows and o columns; removing its last reader removes the kv head as well.
   */
  kvGroup?: string;
}

export type LinearKind = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down';

/** A linear layer `y = x Wᵀ`; W is stored [outFeatures, inFeatures] as in Hugging Face checkpoints. */
export interface LinearLayer {
  /** Parameter name of its weight, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  param: string;
  layer: number;
  kind: LinearKind;
  inFeatures: number;
  outFeatures: number;
}

/** Called with the 2-D input [tokens, inFeatures] of a linear layer during a forward pass. Must not dispose it. */
export type CaptureFn = (linear: LinearLayer, input: Tensor2D) => void;

/** Target scores per position (see `CausalLM.scoreTargets`). */
export interface TargetScores {
  target: Float32Array;
  lse: Float32Array;
  max: Float32Array;
}

export interface CausalLM {
  readonly config: ModelConfig;
  /** Trainable parameters by Hugging Face name. */
  parameters(): ReadonlyMap<string, Variable>;
  parameterCount(): number;
  /** Logits [batch, seq, vocab] for token ids [batch, seq]. */
  forward(ids: Tensor2D): Tensor3D;
  /** Mean next-token cross-entropy of ids [batch, seq] (predicting ids[:,1:] from ids[:,:-1]). */
  loss(ids: Tensor2D): Scalar;
  /** Layer-wise pieces, for calibration passes that go block by block. */
  embed(ids: Tensor2D): Tensor3D;
  block(index: number, hidden: Tensor3D): Tensor3D;
  /**
   * Run block `index` on `hidden` for its capture hooks only (calibration statistics): every linear layer's input
   * reaches the hooks as in `block`, but nothing is returned, so a model may skip the work only the block's output
   * needs (a LLaMA block's last product, the feed-forward down projection). Optional: callers fall back to `block`.
   */
  captureBlock?(index: number, hidden: Tensor3D): void;
  head(hidden: Tensor3D): Tensor3D;
  /**
   * Per position of hidden states [b, t, dim] after the last block, with one target id per position: the target's
   * logit, log Σ exp(logits) and the largest logit — computed over vocabulary chunks, so the [b·t, vocab] logits
   * never exist whole (a 128K vocabulary at 16K positions would be 8 GB).
   */
  scoreTargets(hidden: Tensor3D, targets: Int32Array): TargetScores;
  /** Whether only one block at a time is on the tensor heap (the rest read from the checkpoint when needed). */
  readonly streamed: boolean;
  /** Number of blocks currently in the model. */
  readonly numBlocks: number;
  /** The linear layers of one block (or all blocks). */
  linears(layer?: number): LinearLayer[];
  /** Register a capture hook on every linear layer's input; returns the function that removes it. */
  capture(fn: CaptureFn): () => void;
  /** Minimal coupled groups of the current architecture. */
  groups(kinds?: readonly GroupKind[]): ParameterGroup[];
  /** Element masks (1 keep, 0 prune) for a weight; applied immediately and kept through training steps. */
  setElementMask(param: string, keep: Uint8Array): void;
  /** Mask whole groups: their members are zeroed and stay zero; `slim()` removes them physically. */
  maskGroups(groupIds: readonly string[]): void;
  maskedGroups(): readonly string[];
  /** Re-apply all masks to the weights (after an optimiser step). */
  applyMasks(): void;
  /** A new, physically smaller model without the masked groups; computes exactly what the masked model computes. */
  slim(): CausalLM;
  /**
   * Where each group id of this model lands in the model `slim()` would return now (masked groups and kv heads no
   * live query head reads are absent; blocks renumber). Accumulated per-group state follows its group through this.
   */
  slimMapping(): ReadonlyMap<string, string>;
  /**
   * The float32 values of a tensor the model's engine holds (a block's output, a captured layer input), row-major:
   * a live view of the engine's memory where it allows (tfjs-wasm's heap), else a copy. Read it at once — it is
   * valid only until the next tensor operation — and never write to it. Why: a fresh array of a batch's hidden
   * states (11 MB per feed-forward input at Llama-2-7B) costs more to fault in than to fill.
   * Optional: callers fall back to `tensor.dataSync()`.
   */
  hostValues?(tensor: Tensor): Float32Array;
  /**
   * Read a weight as a host array (row-major) and write one back. The array may be the engine's own buffer unless
   * `copy` is set: then it belongs to the caller, who may modify it (a model makes no second copy where the engine's
   * read already made one — a pruner's working copy of a 7B FFN weight is 180 MB).
   */
  readWeight(param: string, options?: { copy?: boolean }): Float32Array;
  /**
   * With `keep`: exactly `writeWeight(param, data)` then `setElementMask(param, keep)`, in one write — the masked
   * weight is formed on the host, so no mask-sized tensors are made (a streamed 7B layer is 180 MB).
   */
  writeWeight(param: string, data: Float32Array, keep?: Uint8Array): void;
  /**
   * Change a weight in place: `edit` gets its values — the engine's own memory where the model allows (a streamed
   * block on a host-memory engine), else a copy — modifies them and returns the keep mask it applied, if any. The
   * result is exactly `writeWeight(param, edited, keep)`, without the weight-sized copy out and back (180 MB per
   * Llama-2-7B FFN matrix). The values are valid only during the call, which must run no tensor operation.
   * Optional: callers fall back to `readWeight({ copy: true })` + `writeWeight`.
   */
  editWeight?(param: string, edit: (weight: Float32Array) => Uint8Array | undefined): void;
  /** A deep copy (for distillation teachers, before/after comparisons). */
  clone(): CausalLM;
  dispose(): void;
}

/** Loads and saves models in one file format (llama2.c .bin, safetensors + config.json, ...). */
export interface ModelFormat {
  readonly name: string;
  /** Whether this format recognises the path (by extension or folder contents). */
  canLoad(path: string): boolean;
  load(path: string): Promise<CausalLM>;
  canSave: boolean;
  save?(model: CausalLM, dir: string): Promise<void>;
}

export type { Tensor };
