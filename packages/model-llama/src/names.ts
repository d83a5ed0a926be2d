/** Hugging Face parameter names and the linear layers of a Llama block. */
import type { LinearKind } from '@topiary/kernel';

export const EMBED = 'model.embed_tokens.weight';
export const FINAL_NORM = 'model.norm.weight';
export const LM_HEAD = 'lm_head.weight';

const linearSuffix: Record<LinearKind, string> = {
  q: 'self_attn.q_proj.weight',
  k: 'self_attn.k_proj.weight',
  v: 'self_attn.v_proj.weight',
  o: 'self_attn.o_proj.weight',
  gate: 'mlp.gate_proj.weight',
  up: 'mlp.up_proj.weight',
  down: 'mlp.down_proj.weight',
};

export const LINEAR_KINDS: readonly LinearKind[] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];

export function linearName(layer: number, kind: LinearKind): string {
  return `model.layers.${layer}.${linearSuffix[kind]}`;
}

/** The projections that may carry a bias (Qwen2: `self_attn.{q,k,v}_proj.bias`). */
export type BiasKind = 'q' | 'k' | 'v';
export const BIAS_KINDS: readonly BiasKind[] = ['q', 'k', 'v'];

export function biasName(layer: number, kind: BiasKind): string {
  return `model.layers.${layer}.self_attn.${kind}_proj.bias`;
}

export function inputNormName(layer: number): string {
  return `model.layers.${layer}.input_layernorm.weight`;
}

export function postNormName(layer: number): string {
  return `model.layers.${layer}.post_attention_layernorm.weight`;
}

/** All parameter names of one block (with the q/k/v biases when `withBias`). */
export function blockParamNames(layer: number, withBias = false): string[] {
  const biases = withBias ? BIAS_KINDS.map((k) => biasName(layer, k)) : [];
  return [inputNormName(layer), ...LINEAR_KINDS.map((k) => linearName(layer, k)), ...biases, postNormName(layer)];
}
