/**
 * Options as schemas. Every plugin (pruner, saliency, scheduler, stage) declares its options once, as a zod schema:
 * that one declaration is its TypeScript type (`OptionsOf<S>`), its validation with exact paths and its defaults
 * (`parseOptions`), its JSON Schema (`optionsJsonSchema`, for `topiary plugins --json` and recipe completion) and
 * its command-line flags and `--help` lines (`optionFields`, read by the CLI).
 *
 * Why zod (4): it emits JSON Schema itself (`z.toJSONSchema`, no second package), keeps refinements inside object
 * schemas (cross-field rules stay on the object and keep their paths), carries metadata (`.meta({ description })`)
 * into that JSON Schema, and is the validation library TypeScript users most likely already know. valibot is smaller
 * but needs a separate converter for JSON Schema; size does not matter on the CLI's side and the web app bundles
 * only the plugins it uses.
 *
 * Plugins import `z` from here, so every schema is made by the same zod the kernel reads.
 */
import { z } from 'zod';
import { TopiaryError } from './errors.js';

export { z };

/** What a plugin's options are: a zod object (strict: unknown keys are refused with their path). */
export type OptionsSchema = z.ZodObject;

/** The validated options a schema gives (defaults applied, transforms done). */
export type OptionsOf<S extends z.ZodType> = z.output<S>;

/** Metadata a field may carry with `.meta({...})`: what `--help` prints and how the flag is written. */
export interface OptionMeta {
  description?: string;
  /** Flag name when it is not the field's kebab-case (`--owl-m` for `owlM` is derived). */
  flag?: string;
  /** Placeholder in `--help` (`<r>`, `<N:M>`). */
  valueName?: string;
  /** Not offered as a flag (object-valued recipe forms). */
  cli?: false;
}

/** One option as the command line and help see it. */
export interface OptionField {
  key: string;
  flag: string;
  /** Whether the flag takes no value (a boolean). */
  boolean: boolean;
  valueName: string;
  description: string;
  /** The JSON types the field accepts, for coercing a flag's text. */
  types: readonly string[];
  default?: unknown;
  choices?: readonly unknown[];
  required: boolean;
}

type JsonSchema = {
  type?: string | string[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  pattern?: string;
  flag?: string;
  valueName?: string;
  cli?: boolean;
  [key: string]: unknown;
};

/** The schema's input side as JSON Schema (draft 2020-12): what a recipe or a flag may write. */
export function optionsJsonSchema(schema: z.ZodType): Record<string, unknown> {
  return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function typesOf(s: JsonSchema): string[] {
  if (s.anyOf || s.oneOf) return [...new Set((s.anyOf ?? s.oneOf)!.flatMap(typesOf))];
  if (s.enum) return [...new Set(s.enum.map((v) => (typeof v === 'number' ? 'number' : typeof v)))];
  if (s.const !== undefined) return [typeof s.const];
  if (Array.isArray(s.type)) return s.type;
  return s.type ? [s.type] : [];
}

/** The fields of an options schema as flags: name, value, description, default, choices. */
export function optionFields(schema: z.ZodType): OptionField[] {
  const json = optionsJsonSchema(schema) as JsonSchema;
  const required = new Set(json.required ?? []);
  return Object.entries(json.properties ?? {})
    .filter(([, s]) => s.cli !== false)
    .map(([key, s]) => {
      const types = typesOf(s);
      // what a flag can write: object and list forms are for recipes (`owl: { M: 7 }`), so `boolean | object` is a bare flag
      const flagTypes = types.filter((t) => t !== 'object' && t !== 'array');
      const boolean = flagTypes.length === 1 && flagTypes[0] === 'boolean';
      const choices = s.enum ?? s.anyOf?.flatMap((a) => a.enum ?? []);
      return {
        key,
        flag: s.flag ?? `--${kebab(key)}`,
        boolean,
        valueName: s.valueName ?? (choices && choices.length > 0 ? choices.join('|') : types.includes('number') || types.includes('integer') ? 'n' : 'value'),
        description: s.description ?? '',
        types,
        ...(s.default !== undefined ? { default: s.default } : {}),
        ...(choices && choices.length > 0 ? { choices } : {}),
        required: required.has(key) && s.default === undefined,
      };
    });
}

/** The text of a flag as the value its field takes: numbers for numeric fields, true for a bare boolean flag. */
export function coerceFlagValue(field: OptionField, text: unknown): unknown {
  if (typeof text !== 'string') return text;
  const numeric = field.types.includes('number') || field.types.includes('integer');
  if (numeric && !field.types.includes('string') && text.trim() !== '' && !Number.isNaN(Number(text))) return Number(text);
  if (field.types.includes('boolean') && !field.types.includes('string') && (text === 'true' || text === 'false')) return text === 'true';
  return text;
}

function joinPath(where: string, path: readonly PropertyKey[]): string {
  let out = where;
  for (const p of path) out = typeof p === 'number' ? `${out}[${p}]` : out === '' ? String(p) : `${out}.${String(p)}`;
  return out;
}

/** The JSON Schema of the field at `path` (for describing a number's whole range in one message). */
function fieldSchema(json: JsonSchema, path: readonly PropertyKey[]): JsonSchema | undefined {
  let s: JsonSchema | undefined = json;
  for (const p of path) {
    if (!s) return undefined;
    const branches: JsonSchema[] = s.anyOf ?? s.oneOf ?? [s];
    const holder: JsonSchema | undefined = typeof p === 'number' ? branches.find((b) => b.items) : branches.find((b) => b.properties?.[String(p)]);
    s = typeof p === 'number' ? holder?.items : holder?.properties?.[String(p)];
  }
  const numeric = s?.anyOf?.find((b) => b.type === 'number' || b.type === 'integer');
  return numeric ?? s;
}

function describeRange(s: JsonSchema): string {
  const lo = s.exclusiveMinimum !== undefined ? `(${s.exclusiveMinimum}` : s.minimum !== undefined && s.minimum > -Number.MAX_SAFE_INTEGER ? `[${s.minimum}` : '(-∞';
  const hi = s.exclusiveMaximum !== undefined ? `${s.exclusiveMaximum})` : s.maximum !== undefined && s.maximum < Number.MAX_SAFE_INTEGER ? `${s.maximum}]` : '∞)';
  return `${lo},${hi}`;
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v = raw;
  for (const p of path) v = typeof v === 'object' && v !== null ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}

/** One zod issue as the message Topiary prints after the path: `must be in [0,1), got 1.5`. */
function issueMessage(issue: z.core.$ZodIssue, raw: unknown, json: () => JsonSchema): string {
  const got = valueAt(raw, issue.path);
  switch (issue.code) {
    case 'invalid_type':
      if (got === undefined) return 'is required';
      if (issue.expected === 'int') return `must be an integer, got ${JSON.stringify(got)}`;
      return `must be ${issue.expected === 'object' ? 'an object' : `a ${issue.expected}`}, got ${JSON.stringify(got)}`;
    case 'too_small':
    case 'too_big': {
      if (issue.origin === 'number' || issue.origin === 'int') {
        const s = fieldSchema(json(), issue.path);
        return `must be in ${s ? describeRange(s) : issue.code === 'too_small' ? `[${String(issue.minimum)},∞)` : `(-∞,${String(issue.maximum)}]`}, got ${String(got)}`;
      }
      return issue.message;
    }
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${JSON.stringify(got)}`;
    case 'invalid_format':
      return `${issue.message.replace(/^Invalid string: /, 'must ')}, got ${JSON.stringify(got)}`;
    case 'invalid_union': {
      const inner = issue.errors.flat();
      return inner.length === 1 ? issueMessage(inner[0]!, raw, json) : `is not valid here, got ${JSON.stringify(got)}`;
    }
    default:
      return issue.message;
  }
}

/** A field the schema does not have (a typo, or another method's option): apps can tell it apart without reading text. */
export class UnknownFieldError extends TopiaryError {
  constructor(where: string, file: string | undefined, hint: string) {
    super('E_RECIPE', 'unknown field', { file, where, hint });
  }

  override inFile(file: string): UnknownFieldError {
    return new UnknownFieldError(this.where ?? '', file, this.hint ?? '');
  }
}

/** Every problem with `raw` under `schema`, each a TopiaryError naming the full path (`stages[1].prune.sparsity`). */
export function optionErrors(schema: z.ZodType, raw: unknown, where: string, file?: string): TopiaryError[] {
  const result = schema.safeParse(raw ?? {});
  if (result.success) return [];
  let json: JsonSchema | undefined;
  const jsonOf = (): JsonSchema => (json ??= optionsJsonSchema(schema) as JsonSchema);
  const errors: TopiaryError[] = [];
  // unknown fields first: a typo (`txt` for `text`) also makes the real field missing, and the typo is the news
  const unknown: TopiaryError[] = [];
  for (const issue of result.error.issues) {
    if (issue.code === 'unrecognized_keys') {
      const known = Object.keys(jsonOf().properties ?? {});
      for (const key of issue.keys) {
        unknown.push(new UnknownFieldError(joinPath(where, [...issue.path, key]), file, `known fields: ${known.join(', ')}`));
      }
      continue;
    }
    const hint = (issue as { params?: { hint?: string } }).params?.hint;
    errors.push(new TopiaryError('E_RECIPE', issueMessage(issue, raw ?? {}, jsonOf), { file, where: joinPath(where, issue.path), ...(hint ? { hint } : {}) }));
  }
  return [...unknown, ...errors];
}

/**
 * Validate options against their schema: the typed value with defaults, or a TopiaryError (E_RECIPE) for the first
 * problem, naming `where` + the field's path. `optionErrors` lists them all.
 */
export function parseOptions<S extends z.ZodType>(schema: S, raw: unknown, where: string, file?: string): z.output<S> {
  const result = schema.safeParse(raw ?? {});
  if (result.success) return result.data;
  throw optionErrors(schema, raw, where, file)[0]!;
}

/** An issue with a hint, for `superRefine` checks that cross fields (`ctx.addIssue(crossFieldIssue(...))`). */
export function crossFieldIssue(path: PropertyKey[], message: string, hint?: string): z.core.$ZodRawIssue {
  return { code: 'custom', path, message, input: undefined, ...(hint ? { params: { hint } } : {}) };
}
