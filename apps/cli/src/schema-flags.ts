/**
 * Flags from an options schema: each field is a flag (`batchSize` → `--batch-size`), its `.meta({ description })`
 * the help line with its default; the values the user typed become the raw options the schema validates, and an
 * error naming a field becomes an error naming the flag the user typed.
 */
import type { Command } from 'commander';
import { coerceFlagValue, optionFields, TopiaryError, type OptionField, type Raw, type z } from '@topiary/kernel';

/** commander's attribute name for a flag (`--owl-m` → `owlM`). */
export function attributeOf(flag: string): string {
  return flag.replace(/^--/, '').replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** `--flag <value>` and its help text (with the schema's default). */
export function flagSpec(field: OptionField, tag?: string): { flags: string; description: string } {
  const extra = field.default !== undefined ? ` (default ${JSON.stringify(field.default)})` : '';
  return { flags: `${field.flag}${field.boolean ? '' : ` <${field.valueName}>`}`, description: `${tag ? `[${tag}] ` : ''}${field.description}${extra}` };
}

/** Add a schema's fields as flags (no commander defaults: the schema's own apply). */
export function addSchemaFlags(command: Command, schema: z.ZodType): OptionField[] {
  const fields = optionFields(schema);
  for (const field of fields) {
    const { flags, description } = flagSpec(field);
    command.option(flags, description);
  }
  return fields;
}

/** The raw options the user gave on the command line (only the flags given; text coerced to the field's type). */
export function valuesFromFlags(flags: Record<string, unknown>, fields: readonly OptionField[]): Raw {
  const raw: Raw = {};
  for (const field of fields) {
    const value = flags[attributeOf(field.flag)];
    if (value !== undefined) raw[field.key] = coerceFlagValue(field, value);
  }
  return raw;
}

/** An error that names an option field (`lr`, `owl.M`) as the same error naming its flag (`--lr`). */
export function asFlagError(e: unknown, fields: readonly OptionField[]): unknown {
  if (!(e instanceof TopiaryError) || e.where === undefined || e.where.startsWith('--')) return e;
  const key = e.where.split(/[.[]/)[0]!;
  const field = fields.find((f) => f.key === key);
  if (!field) return e;
  return new TopiaryError(e.code === 'E_RECIPE' ? 'E_USAGE' : e.code, e.message, { where: field.flag, hint: e.hint, cause: e });
}
