/**
 * The storage dtype a model was loaded with. Loading a safetensors checkpoint records its dtype against the config
 * object the model keeps (`model.config`), so saving writes bf16 back as bf16 and f16 as f16 unless a dtype is asked
 * for. A config built afresh (slimming builds a new one) has none recorded and is written as float32.
 */
import type { LlamaConfig } from '../config.js';
import type { SafetensorsDtype } from './safetensors.js';

/** The dtypes a checkpoint can be written in, as config.json's torch_dtype names them. */
export type StorageDtype = 'float32' | 'float16' | 'bfloat16';
export const STORAGE_DTYPES: readonly StorageDtype[] = ['float32', 'float16', 'bfloat16'];

const recorded = new WeakMap<object, StorageDtype>();

/** Remember the dtype `config`'s weights were stored in. */
export function rememberDtype(config: LlamaConfig, dtype: StorageDtype): void {
  recorded.set(config, dtype);
}

/** The dtype `config`'s weights were loaded from, if one was recorded. */
export function loadedDtype(config: LlamaConfig): StorageDtype | undefined {
  return recorded.get(config);
}

/** The storage dtype of a set of safetensors dtypes: the common one; mixed or F64 files count as float32. */
export function storageDtypeOf(dtypes: Iterable<SafetensorsDtype>): StorageDtype {
  const set = new Set(dtypes);
  if (set.size !== 1) return 'float32';
  const only = [...set][0]!;
  return only === 'F16' ? 'float16' : only === 'BF16' ? 'bfloat16' : 'float32';
}

/** The safetensors name of a storage dtype. */
export function safetensorsDtype(dtype: StorageDtype): 'F32' | 'F16' | 'BF16' {
  return dtype === 'float16' ? 'F16' : dtype === 'bfloat16' ? 'BF16' : 'F32';
}
