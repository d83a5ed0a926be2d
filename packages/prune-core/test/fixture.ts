/** Reads the reference outputs of bench/reference/prune_reference.py (base64 little-endian arrays, packed bits). */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const referenceDir = join(repoRoot, 'bench', 'reference', 'outputs');

export function readReference<T>(name: string): T {
  return JSON.parse(readFileSync(join(referenceDir, name), 'utf8')) as T;
}

export function f32(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64');
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

export function f64(b64: string): Float64Array {
  const buf = Buffer.from(b64, 'base64');
  return new Float64Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

/** numpy.packbits(..., bitorder='little') → one byte (0/1) per element. */
export function unpackBits(b64: string, length: number): Uint8Array {
  const buf = Buffer.from(b64, 'base64');
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (buf[i >> 3]! >> (i & 7)) & 1;
  return out;
}

export function countDiff(a: Uint8Array, b: Uint8Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) d++;
  return d;
}

export interface UnitCase {
  param: string;
  rows: number;
  cols: number;
  tokens: number;
  weight: string;
  activationSquares: string;
  hessian: string;
  wanda: Record<string, string>;
  magnitude: Record<string, string>;
  sparsegpt: Record<string, { weight: string; keep: string; blocksize: number }>;
}

export interface UnitReference {
  cases: UnitCase[];
  owl: { M: number; lambda: number; target: number; ratios: number[]; sparsities: number[] };
}

/** The mask rules behind the reference labels. */
export const RULES: Record<string, { sparsity: number; pattern?: { n: number; m: number }; scope: 'row' | 'layer' }> = {
  row50: { sparsity: 0.5, scope: 'row' },
  layer50: { sparsity: 0.5, scope: 'layer' },
  row30: { sparsity: 0.3, scope: 'row' },
  '2:4': { sparsity: 0.5, pattern: { n: 2, m: 4 }, scope: 'row' },
  '4:8': { sparsity: 0.5, pattern: { n: 4, m: 8 }, scope: 'row' },
};
