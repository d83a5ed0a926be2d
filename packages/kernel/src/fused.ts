/**
 * Optional fused kernels: one pass where the composite tfjs ops take many. A backend plugin may register any of
 * them for its tfjs engine (`tf.registerKernel({ kernelName, backendName, kernelFunc })`); model code checks
 * `tf.getKernel(name, tf.getBackend())` and runs it through `tf.engine().runKernel`, or computes the same thing with
 * composite ops when the active engine lacks it. So every backend gives the same numbers (to float rounding) and a faster one only
 * has to provide the kernel. All tensors float32 and row-major unless said otherwise.
 */
export const FusedKernel = {
  /**
   * Row-wise softmax cross-entropy of logits z [n, vocab] against targets t [n] (int32).
   * inputs { logits, targets }; attrs { withGrad: boolean, scale: number }.
   * outputs: loss [n] with loss_i = logsumexp(z_i) − z_i[t_i]; and when withGrad,
   * grad [n, vocab] = (softmax(z) − onehot(t)) · scale.
   */
  softmaxCrossEntropy: 'TopiarySoftmaxCrossEntropy',
  /**
   * One AdamW update (Loshchilov & Hutter), element-wise over one parameter.
   * inputs { param, grad, m, v } (same size); attrs { lr, beta1, beta2, eps, decay, gradScale, bc1, bc2 }.
   *   g = gradScale·grad;  m' = β₁m + (1−β₁)g;  v' = β₂v + (1−β₂)g²
   *   param' = param·(1 − decay) − lr · (m'/bc1) / (√(v'/bc2) + eps)
   * outputs [param', m', v'] (new tensors; the inputs are not modified).
   */
  adamw: 'TopiaryAdamW',
  /**
   * Rotary position embedding (rotate-half) fused with the head transpose.
   * inputs { x, cos [seq, headDim], sin [seq, headDim] }; attrs { batch, seq, heads, headDim, backward }.
   * forward: x [batch·seq, heads·headDim] → [batch, heads, seq, headDim], out = x·cos + rot(x)·sin,
   *   rot([x₁, x₂]) = [−x₂, x₁];
   * backward (the transpose map, for gradients): x [batch, heads, seq, headDim] → [batch·seq, heads·headDim],
   *   out = x·cos + rotᵀ(x·sin), rotᵀ([z₁, z₂]) = [z₂, −z₁].
   */
  ropeHeads: 'TopiaryRopeHeads',
  /**
   * Causal softmax of attention scores. inputs { scores [items, rows, cols] }; attrs { seq, scale }.
   * probs = softmax(scale·scores + mask) over the last axis; query row r is at position r mod seq (a row block may
   * stack several query heads that share a kv head) and reads keys 0..position (the rest get probability 0).
   */
  causalSoftmax: 'TopiaryCausalSoftmax',
  /**
   * Gradient of softmax scores. inputs { probs, dProbs } (same shape); attrs { scale }.
   * out = P·(dP − Σ_j dP·P)·scale, row-wise over the last axis.
   */
  softmaxGrad: 'TopiarySoftmaxGrad',
  /** SwiGLU's product. inputs { gate, up } (same shape) → m = g·σ(g)·u. */
  swiglu: 'TopiarySwiglu',
  /**
   * SwiGLU's gradient. inputs { gate, up, dm } → [dGate, dUp], with s = σ(g):
   * dUp = dm·g·s,  dGate = dm·u·s·(1 + g·(1 − s)).
   */
  swigluGrad: 'TopiarySwigluGrad',
  /**
   * RMSNorm over the last axis of x [rows, d]. inputs { x, weight [d] }; attrs { eps, activeDim }.
   * outputs [out, r]: r [rows, 1] = (Σ_j x² / activeDim + eps)^(−½), out = x·r·weight.
   */
  rmsNorm: 'TopiaryRmsNorm',
  /**
   * RMSNorm's gradient. inputs { dh, x, r, weight, residual? }; attrs { activeDim }. With n = x·r, dn = dh·weight:
   * outputs [dx, dWeight]: dx = r·(dn − n·Σ_j(dn·n)/activeDim) (+ residual, when given), dWeight = Σ_rows dh·n.
   */
  rmsNormGrad: 'TopiaryRmsNormGrad',
  /**
   * One kv-cache decode step of the whole model for n sequences of one new token each, at position `pos` (the
   * keys/values of positions 0..pos−1 already in the caches). It is the model's block forward (see model-llama's
   * block-grad) for t = 1, in one dispatch instead of ~20 ops per block — what bounds small models' generation.
   * inputs: embedding [vocab, dim]; finalNorm [dim]; head [vocab, dim]; cos, sin [capacity, headDim]
   *   (RoPE tables from position 0); and per block l (names `${l}.…`) that has attention: inputNorm, q, k, v, o
   *   (weights [out, in]), qBias, kBias, vBias when attrs.bias, and kCache, vCache [n, kvHeads, capacity, headDim];
   *   per block with a feed-forward half: postNorm, gate, up, down.
   * attrs: { ids: number[] (the n new tokens: an attribute, so a step creates no input tensor), pos, headDim, eps,
   *   activeDim, bias: boolean, heads: number[], kvHeads: number[], hidden: number[], headKvMap: number[] } — heads[l] = 0 skips the attention half (and hidden[l] = 0 the feed-forward half),
   *   headKvMap is every block's query-head → kv-head map, concatenated.
   * outputs: logits [n, vocab]. **The caches are written in place**: position pos of kCache/vCache receives the
   * step's (rotated) keys and values, so the caller must own them (no other tensor may share their data).
   */
  decodeStep: 'TopiaryDecodeStep',
} as const;

export type FusedKernelName = (typeof FusedKernel)[keyof typeof FusedKernel];

/** What a backend's kernel sees of a tensor: enough to check a fused kernel's inputs. */
export interface TensorShapeInfo {
  readonly dtype: string;
  readonly shape: readonly number[];
}

/**
 * The input check every backend's FusedKernel.softmaxCrossEntropy makes: float32 logits [n, vocab] and int32
 * targets [n]. Throws an Error naming what it got.
 */
export function checkSoftmaxCrossEntropyInputs(logits: TensorShapeInfo, targets: TensorShapeInfo): void {
  const ok = logits.dtype === 'float32' && targets.dtype === 'int32' && logits.shape.length === 2 && targets.shape.length === 1 && targets.shape[0] === logits.shape[0];
  if (!ok) {
    throw new Error(
      `${FusedKernel.softmaxCrossEntropy}: expected float32 logits [n, vocab] and int32 targets [n], got ${logits.dtype} [${logits.shape}] and ${targets.dtype} [${targets.shape}]`,
    );
  }
}

