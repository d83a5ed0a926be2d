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
} as const;

export type FusedKernelName = (typeof FusedKernel)[keyof typeof FusedKernel];

