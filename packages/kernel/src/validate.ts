/**
 * The few checks left outside schemas: a plain flag value (`--samples 16`) the CLI reads before any plugin is
 * involved. Every option set a plugin or stage declares is a schema (`options.ts`); nothing else validates here.
 */
import { TopiaryError } from './errors.js';

export type Raw = Record<string, unknown>;

function fail(where: string, message: string): never {
  throw new TopiaryError('E_RECIPE', message, { where });
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
