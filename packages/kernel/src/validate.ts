/**
 * Small validators for options coming from recipes and flags. Every failure is a TopiaryError whose `where`
 * is the full path of the field (`stages[2].prune.sparsity`) or the flag.
 */
import { TopiaryError } from './errors.js';

export type Raw = Record<string, unknown>;

function fail(where: string, message: string, hint?: string): never {
  throw new TopiaryError('E_RECIPE', message, { where, hint });
}

export function fieldPath(where: string, key: string): string {
  if (where === '') return key;
  if (where.startsWith('--')) return where; // a flag names itself
  return `${where}.${key}`;
}

export function isRecord(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface NumberRule {
  min?: number;
  max?: number;
  /** Exclusive bounds. */
  above?: number;
  below?: number;
  integer?: boolean;
}

function describeRange(rule: NumberRule): string {
  const lo = rule.above !== undefined ? `(${rule.above}` : rule.min !== undefined ? `[${rule.min}` : '(-∞';
  const hi = rule.below !== undefined ? `${rule.below})` : rule.max !== undefined ? `${rule.max}]` : '∞)';
  return `${lo},${hi}`;
}

export function checkNumber(value: unknown, where: string, rule: NumberRule = {}): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || Number.isNaN(n)) fail(where, `must be a number, got ${JSON.stringify(value)}`);
  if (rule.integer && !Number.isInteger(n)) fail(where, `must be an integer, got ${n}`);
  const outside =
    (rule.min !== undefined && n < rule.min) ||
    (rule.max !== undefined && n > rule.max) ||
    (rule.above !== undefined && n <= rule.above) ||
    (rule.below !== undefined && n >= rule.below);
  if (outside) fail(where, `must be in ${describeRange(rule)}, got ${n}`);
  return n;
}

export function optionalNumber(raw: Raw, key: string, where: string, fallback: number, rule: NumberRule = {}): number {
  return raw[key] === undefined ? fallback : checkNumber(raw[key], fieldPath(where, key), rule);
}

export function requiredNumber(raw: Raw, key: string, where: string, rule: NumberRule = {}): number {
  if (raw[key] === undefined) fail(fieldPath(where, key), 'is required');
  return checkNumber(raw[key], fieldPath(where, key), rule);
}

export function checkString(value: unknown, where: string): string {
  if (typeof value !== 'string' || value === '') fail(where, `must be a non-empty string, got ${JSON.stringify(value)}`);
  return value;
}

export function optionalString(raw: Raw, key: string, where: string): string | undefined {
  return raw[key] === undefined ? undefined : checkString(raw[key], fieldPath(where, key));
}

export function requiredString(raw: Raw, key: string, where: string): string {
  if (raw[key] === undefined) fail(fieldPath(where, key), 'is required');
  return checkString(raw[key], fieldPath(where, key));
}

export function checkOneOf<T extends string>(value: unknown, where: string, choices: readonly T[]): T {
  if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
    fail(where, `must be one of ${choices.join(', ')}; got ${JSON.stringify(value)}`);
  }
  return value as T;
}

export function optionalOneOf<T extends string>(raw: Raw, key: string, where: string, choices: readonly T[], fallback: T): T {
  return raw[key] === undefined ? fallback : checkOneOf(raw[key], fieldPath(where, key), choices);
}

export function optionalBoolean(raw: Raw, key: string, where: string, fallback: boolean): boolean {
  const v = raw[key];
  if (v === undefined) return fallback;
  if (v === true || v === 'true') return true;
  if (v === false || v === 'false') return false;
  fail(fieldPath(where, key), `must be true or false, got ${JSON.stringify(v)}`);
}

/** Reject keys nobody reads: a typo in a recipe must not be silently ignored. */
export function rejectUnknownKeys(raw: Raw, where: string, known: readonly string[]): void {
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) {
      fail(fieldPath(where, key), `unknown field`, `known fields here: ${known.join(', ')}`);
    }
  }
}

/** Parse an `N:M` pattern; N must be below M. */
export function checkPattern(value: unknown, where: string): { n: number; m: number } {
  const match = typeof value === 'string' ? /^(\d+):(\d+)$/.exec(value.trim()) : null;
  if (!match) fail(where, `must look like N:M (e.g. 2:4), got ${JSON.stringify(value)}`);
  const n = Number(match[1]);
  const m = Number(match[2]);
  if (m < 1 || n < 1 || n >= m) fail(where, `needs 0 < N < M, got ${n}:${m}`);
  return { n, m };
}
