/** The file names of a Hugging Face model folder, in one place (readers, the writer and the streamed writer). */

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/** Shard k (1-based) of n, as `save_pretrained` names them: model-00001-of-00007.safetensors. */
export function shardName(k: number, n: number): string {
  return `model-${String(k).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}

/** Whether a file name is one of a model's weight files (single, shard or index). */
export function isWeightFile(name: string): boolean {
  return /^model-\d{5}-of-\d{5}\.safetensors$/.test(name) || name === WEIGHTS_FILE || name === INDEX_FILE;
}
