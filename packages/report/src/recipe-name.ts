/**
 * The report's title: the recipe's `name` (the kernel's `recipeEnvelope.name`, "a name for the run (shown in the
 * report)"), else the run folder's name.
 *
 * The name is looked for in recipe.resolved.yaml in the run folder first, then in the recipe file results.json
 * names (`results.recipe`, the file the run was started from). Only the top-level `name` scalar is read, so this
 * needs no YAML library: a recipe is a mapping at the top level (JSON or YAML), and `name` is a string.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { RunResults } from './results.js';

/** The top-level `name` of a recipe's text (YAML or JSON), when it is a non-empty string. */
export function recipeNameFromText(text: string): string | undefined {
  const body = text.replace(/^\uFEFF/, '');
  if (/^\s*\{/.test(body)) {
    try {
      const value = JSON.parse(body) as { name?: unknown };
      return typeof value.name === 'string' && value.name.trim() !== '' ? value.name.trim() : undefined;
    } catch {
      return undefined; // a YAML flow mapping: not worth a parser for a title
    }
  }
  const lines = body.split(/\r?\n/);
  let seenContent = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^---(\s|$)/.test(line)) {
      if (seenContent) return undefined; // only the first document is the recipe
      continue;
    }
    if (line.trim() !== '' && !line.trimStart().startsWith('#')) seenContent = true;
    // a top-level key starts in column 0
    const m = /^(?:name|"name"|'name')\s*:(?:[ \t]+(.*))?$/.exec(line);
    if (!m) continue;
    const raw = (m[1] ?? '').trim();
    if (raw.startsWith('|') || raw.startsWith('>')) {
      // a block scalar: the indented lines that follow, folded into one line for a title
      const block: string[] = [];
      for (let j = i + 1; j < lines.length && (/^\s/.test(lines[j]!) || lines[j]!.trim() === ''); j++) block.push(lines[j]!.trim());
      const joined = block.filter(Boolean).join(' ').trim();
      return joined === '' ? undefined : joined;
    }
    return scalar(raw);
  }
  return undefined;
}

function scalar(raw: string): string | undefined {
  let value: string | undefined;
  if (raw.startsWith('"')) {
    const m = /^"((?:[^"\\]|\\.)*)"/.exec(raw);
    if (!m) return undefined;
    try {
      value = JSON.parse(`"${m[1]!}"`) as string;
    } catch {
      value = m[1]!;
    }
  } else if (raw.startsWith("'")) {
    const m = /^'((?:[^']|'')*)'/.exec(raw);
    if (!m) return undefined;
    value = m[1]!.replace(/''/g, "'");
  } else {
    if (/^[[{&*!|>%@`]/.test(raw)) return undefined; // not a plain string
    value = raw.replace(/(^|\s+)#.*$/, '').trim();
    if (value === '~' || value === 'null' || value === 'Null' || value === 'NULL') return undefined;
  }
  value = value.trim();
  return value === '' ? undefined : value;
}

function nameInFile(file: string): string | undefined {
  try {
    return existsSync(file) ? recipeNameFromText(readFileSync(file, 'utf8')) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The recipe's `name` for a run folder: recipe.resolved.yaml's, else the original recipe file's (`results.recipe`,
 * made absolute against the working directory when it was given relative), else undefined.
 */
export function recipeNameOf(runDir: string, results: Pick<RunResults, 'recipe' | 'recipeName'>): string | undefined {
  if (typeof results.recipeName === 'string' && results.recipeName.trim() !== '') return results.recipeName.trim();
  const resolvedName = nameInFile(join(runDir, 'recipe.resolved.yaml'));
  if (resolvedName) return resolvedName;
  if (typeof results.recipe === 'string' && results.recipe !== '') {
    return nameInFile(isAbsolute(results.recipe) ? results.recipe : resolve(results.recipe));
  }
  return undefined;
}
