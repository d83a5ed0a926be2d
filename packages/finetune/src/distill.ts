/**
 * The recovery loss. Plain: next-token cross-entropy. With a teacher (the dense model before pruning):
 *
 *   L = α · T² · KL( softmax(z_t / T) ‖ softmax(z_s / T) ) + (1 − α) · CE(z_s, next tokens)
 *
 * averaged over every predicted position (Hinton et al. 2015; T² keeps the soft-target gradient on the same scale
 * as the hard one when T changes). α = 1 is pure distillation, α = 0 plain fine-tuning.
 */
import * as tf from '@tensorflow/tfjs';

/** Mean next-token cross-entropy of logits [n, V] against targets [n]. */
export function crossEntropyLoss(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);
    const picked = tf.sum(tf.mul(logp, tf.oneHot(targets, logits.shape[1])), 1);
    return tf.neg(tf.mean(picked)) as tf.Scalar;
  });
}

/** Mean over rows of KL(softmax(teacher/T) ‖ softmax(student/T)) for logits [n, V]. */
export function distillationKl(student: tf.Tensor2D, teacher: tf.Tensor2D, temperature: number): tf.Scalar {
  return tf.tidy(() => {
    const logPs = tf.logSoftmax(tf.div(student, temperature));
    const logPt = tf.logSoftmax(tf.div(teacher, temperature));
    const kl = tf.sum(tf.mul(tf.exp(logPt), tf.sub(logPt, logPs)), 1);
    return tf.mean(kl) as tf.Scalar;
  });
}

export interface DistillOptions {
  temperature: number;
  /** Weight of the distillation term, in [0, 1]. */
  alpha: number;
}

/** α·T²·KL + (1 − α)·CE; `teacher` null gives plain CE. */
export function recoveryLoss(student: tf.Tensor2D, targets: tf.Tensor1D, teacher: tf.Tensor2D | null, opts: DistillOptions): tf.Scalar {
  return tf.tidy(() => {
    const ce = crossEntropyLoss(student, targets);
    if (teacher === null || opts.alpha === 0) return ce;
    const kl = distillationKl(student, teacher, opts.temperature);
    const soft = tf.mul(kl, opts.alpha * opts.temperature * opts.temperature);
    return (opts.alpha === 1 ? soft : tf.add(soft, tf.mul(ce, 1 - opts.alpha))) as tf.Scalar;
  });
}
