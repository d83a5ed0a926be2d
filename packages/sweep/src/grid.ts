/**
 * A grid: an ordinary recipe plus `matrix:` — field paths, each with a list of values. Expanding it gives one
 * recipe per combination, each checked exactly as `topiary run` checks a recipe (envelope, every stage's schema, the
 * method's own options, every file) before anything runs. An error caused by an axis names the axis
 * (`matrix.stages[1].prune.sparsty`), not the expanded recipe nobody wrote.
 *
 *   matrix:
 *     stages[1].prune.method: [magnitude, wanda, sparsegpt]   # a full path, as errors write it
 *     sparsity: [0.3, 0.5, 0.7]                               # a short form: the one stage option of that name
 *     data.calibration.seed: [0, 1, 2]
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { ioError, recipeEnvelope, recipeErrors, TopiaryError, UnknownFieldError, validateRecipe, type Recipe, type Stage } from '@topiary/kernel';
import { errorsOf, installedStages, planRecipe, recipeDocument, resolveRecipePaths, throwAll, type RunContext } from '@topiary/pipeline';
import { formatFieldPath, parseFieldPath, pathContains, setAtPath, type PathSegment } from './axis-path.js';

/** A grid file as read: the recipe around the axes, and the axes as written. */
export interface GridFile {
  /** Absolute path of the grid file. */
  file: string;
  /** The recipe the axes vary (everything but `matrix`). */
  base: Record<string, unknown>;
  axes: Array<{ name: string; values: unknown[] }>;
}

export interface SweepAxis {
  /** As written under `matrix:` (`sparsity`, `stages[1].prune.method`). */
  name: string;
  /** The full path it sets (`stages[1].prune.sparsity`). */
  path: string;
  /** The word used for it in run names (`method`, `sparsity`, `seed`). */
  label: string;
  values: unknown[];
}

export interface SweepPoint {
  /** The run's name, made of its axis values (`method-wanda_sparsity-0.5`): its folder, its job id. */
  id: string;
  /** Axis name → this run's value. */
  values: Record<string, unknown>;
  /** The run's recipe as `topiary run` would record it (paths absolute, no output): what a job carries. */
  document: Record<string, unknown>;
  /** The run folder, `<sweep>/runs/<id>`. */
  runDir: string;
}

export interface SweepPlan {
  /** The grid file. */
  file: string;
  /** The recipe's `name`, else the grid file's name. */
  name: string;
  /** The sweep folder: sweep.json, report.html, runs/, logs/, attempts.jsonl. */
  dir: string;
  /** Names this sweep's jobs on a shared queue: the folder's name and a hash of its path. */
  id: string;
  axes: SweepAxis[];
  points: SweepPoint[];
}

export interface ExpandOptions {
  /** The sweep folder; else the grid's `output` (relative to the grid file), else `runs/<grid name>`. */
  out?: string;
  /** One backend for every run (an explicit --backend), instead of the recipe's. */
  backend?: string;
  /** Makes a run's paths absolute from the grid's folder (the CLI passes its resolver, which knows Hub ids). */
  resolvePaths?: (recipe: Recipe, baseDir: string, stages: readonly Stage[]) => Recipe;
  /** Refuse grids larger than this (default 10 000 runs): a slip in a grid should not queue a million runs. */
  maxRuns?: number;
}

const ENVELOPE_KEYS = Object.keys(recipeEnvelope.shape);

function gridError(file: string, where: string, message: string, hint?: string): TopiaryError {
  return new TopiaryError('E_RECIPE', message, { file, where, ...(hint ? { hint } : {}) });
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Read a grid file: YAML (or JSON), a recipe with a non-empty `matrix` of non-empty value lists. */
export function readGrid(path: string): GridFile {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw ioError(e, file, 'read the grid');
  }
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    const err = doc.errors[0]!;
    const line = err.linePos?.[0]?.line;
    throw gridError(file, line !== undefined ? `line ${line}` : '(root)', `not valid YAML/JSON: ${err.message.split('\n')[0]}`);
  }
  const raw: unknown = doc.toJS();
  if (!isMapping(raw)) throw gridError(file, '(root)', 'a grid is a recipe (a mapping) with a matrix: of axes');
  const { matrix, ...base } = raw;
  const example = 'e.g. matrix: { stages[1].prune.method: [magnitude, wanda], sparsity: [0.3, 0.5] }';
  if (matrix === undefined) throw gridError(file, 'matrix', 'is required: the axes to sweep (a field path, then its list of values)', example);
  if (!isMapping(matrix)) throw gridError(file, 'matrix', 'must be a mapping of field paths to lists of values', example);
  const errors: TopiaryError[] = [];
  const axes: GridFile['axes'] = [];
  if (Object.keys(matrix).length === 0) errors.push(gridError(file, 'matrix', 'an empty grid: no axes, so no runs', example));
  for (const [name, values] of Object.entries(matrix)) {
    const where = `matrix.${name}`;
    if (!Array.isArray(values)) {
      errors.push(gridError(file, where, 'must be a list of values', `e.g. ${name}: [${JSON.stringify(values)}]`));
    } else if (values.length === 0) {
      errors.push(gridError(file, where, 'an empty grid: this axis has no values, so the sweep has no runs'));
    } else {
      const seen = new Set<string>();
      for (const v of values) {
        const key = JSON.stringify(v);
        if (seen.has(key)) errors.push(gridError(file, where, `lists ${key} twice`));
        seen.add(key);
      }
      axes.push({ name, values });
    }
  }
  if (base.output !== undefined && typeof base.output !== 'string') errors.push(gridError(file, 'output', 'must be a folder path (the sweep folder)'));
  throwAll(errors);
  return { file, base, axes };
}

/** The name runs and the report use for a grid: its `name`, else its file's name. */
export function gridName(grid: GridFile): string {
  return typeof grid.base.name === 'string' ? grid.base.name : basename(grid.file, extname(grid.file));
}

/** The sweep folder: `out`, else the grid's `output` (relative to the grid file), else `runs/<grid file name>`. */
export function sweepDirOf(grid: GridFile, out?: string): string {
  if (out !== undefined) return resolve(out);
  if (typeof grid.base.output === 'string') return resolve(dirname(grid.file), grid.base.output);
  return resolve('runs', basename(grid.file, extname(grid.file)));
}

function hashOf(value: unknown, length = 8): string {
  return createHash('sha1').update(JSON.stringify(value) ?? 'undefined').digest('hex').slice(0, length);
}

/** A value as it reads in a folder name: `0.5`, `wanda`, `2-4`; paths by their last part; structures by a hash. */
function slug(value: unknown): string {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
    const text = String(value).replace(/[\\/]+$/, '');
    const last = /[\\/]/.test(text) ? text.split(/[\\/]/).pop()! : text;
    const clean = last.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40);
    return clean || hashOf(value, 6);
  }
  return `v${hashOf(value, 6)}`;
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** A deep copy of parsed YAML (plain data). */
function clone<T>(value: T): T {
  return structuredClone(value);
}

interface Resolved {
  name: string;
  segments: PathSegment[];
  values: unknown[];
}

/**
 * Everything wrong with one recipe, as `topiary run` would report it (paths checked only with `paths`), without
 * throwing: envelope problems, unknown stage kinds, each stage's and each method's options, missing files.
 */
function recipeProblems(run: Pick<RunContext, 'container'>, raw: Record<string, unknown>, file: string, stages: readonly Stage[], options: ExpandOptions & { paths: boolean }): { recipe?: Recipe; errors: TopiaryError[] } {
  const kinds = stages.map((s) => s.kind);
  const envelope = recipeErrors(raw, file, kinds);
  if (envelope.length > 0) return { errors: envelope };
  let recipe = validateRecipe(raw, file, kinds);
  recipe = (options.resolvePaths ?? resolveRecipePaths)(recipe, dirname(file), stages);
  try {
    planRecipe(run, recipe, { paths: options.paths });
  } catch (e) {
    return { recipe, errors: errorsOf(e).map((one) => (one instanceof TopiaryError ? one : new TopiaryError('E_INTERNAL', String(one)))) };
  }
  return { recipe, errors: [] };
}

/**
 * Which field a short axis (`sparsity`) means: a top-level recipe field, else the one stage whose options accept it —
 * asked of the stage's own schema (and its method's) by setting it and seeing whether validation calls it unknown,
 * so a plugin's options count exactly as `topiary run` counts them.
 */
function resolveShortAxis(
  run: Pick<RunContext, 'container'>,
  trial: Record<string, unknown>,
  axis: { name: string; values: unknown[] },
  file: string,
  stages: readonly Stage[],
  options: ExpandOptions,
): { segments?: PathSegment[]; error?: TopiaryError } {
  const where = `matrix.${axis.name}`;
  const list = Array.isArray(trial.stages) ? (trial.stages as unknown[]) : [];
  const accepted: PathSegment[][] = [];
  const known: string[] = [];
  list.forEach((stage, index) => {
    if (!isMapping(stage) || Object.keys(stage).length !== 1) return;
    const kind = Object.keys(stage)[0]!;
    if (!stages.some((s) => s.kind === kind)) return;
    const raw = clone(trial);
    if (!setAtPath(raw, ['stages', index, kind, axis.name], axis.values[0])) return;
    const field = `stages[${index}].${kind}.${axis.name}`;
    const unknown = recipeProblems(run, raw, file, stages, { ...options, paths: false }).errors.find((e) => e instanceof UnknownFieldError && e.where === field);
    if (unknown) {
      if (unknown.hint) known.push(`stages[${index}].${kind}: ${unknown.hint.replace(/^known fields: /, '')}`);
    } else {
      accepted.push(['stages', index, kind, axis.name]);
    }
  });
  if (accepted.length === 1) return { segments: accepted[0]! };
  if (accepted.length === 0) {
    return {
      error: new TopiaryError('E_RECIPE', `names no field of this recipe: "${axis.name}" is neither a recipe field nor an option of any of its stages`, {
        file,
        where,
        hint: [`recipe fields: ${ENVELOPE_KEYS.filter((k) => k !== 'output').join(', ')}`, ...known].join('; '),
      }),
    };
  }
  return {
    error: new TopiaryError('E_RECIPE', `is an option of several stages (${accepted.map(formatFieldPath).join(', ')})`, {
      file,
      where,
      hint: `write the full path of the one to vary, e.g. ${formatFieldPath(accepted[0]!)}`,
    }),
  };
}

/** Check where a full path lands in the recipe: an envelope field, or `stages[i].<its kind>…` of a stage that exists. */
function checkFullPath(base: Record<string, unknown>, name: string, segments: PathSegment[], file: string): TopiaryError | undefined {
  const where = `matrix.${name}`;
  const head = segments[0] as string;
  if (head === 'output' || head === 'matrix') return gridError(file, where, `cannot be an axis: ${head === 'output' ? 'the sweep gives every run its own folder (<sweep>/runs/<id>)' : 'axes do not nest'}`);
  if (!ENVELOPE_KEYS.includes(head)) {
    return gridError(file, where, `names no field of a recipe: "${head}"`, `recipe fields: ${ENVELOPE_KEYS.filter((k) => k !== 'output').join(', ')}; a stage's option is written stages[i].<kind>.<field>, or by its name alone`);
  }
  if (head !== 'stages' || segments.length === 1) return undefined;
  const index = segments[1];
  const stages = Array.isArray(base.stages) ? (base.stages as unknown[]) : [];
  if (typeof index !== 'number') return gridError(file, where, 'a stage is named by its index: stages[i].<kind>.<field>', `e.g. stages[0].${String(index)}`);
  if (index >= stages.length) return gridError(file, where, `names stage ${index}, but the recipe has ${stages.length} stage${stages.length === 1 ? '' : 's'} (stages[0] to stages[${stages.length - 1}])`);
  const stage = stages[index];
  const kind = isMapping(stage) ? Object.keys(stage)[0] : undefined;
  if (segments.length >= 3 && kind !== undefined && segments[2] !== kind) {
    return gridError(file, where, `stages[${index}] is a ${kind} stage, not ${String(segments[2])}`, `write stages[${index}].${kind}.${segments.slice(3).map(String).join('.') || '<field>'}`);
  }
  return undefined;
}

/**
 * An error from validating an expanded recipe, told as the grid's: an error at (or inside) an axis's path names the
 * axis and the value that caused it; anything else belongs to the recipe around the axes and stays as it is.
 */
function attribute(error: TopiaryError, axes: readonly SweepAxis[], values: readonly unknown[], file: string): TopiaryError {
  const k = axes.findIndex((a) => pathContains(a.path, error.where));
  if (k < 0) return error.file ? error : error.inFile(file);
  const axis = axes[k]!;
  const where = `matrix.${axis.name}`;
  if (error instanceof UnknownFieldError) {
    return new TopiaryError('E_RECIPE', `names a field that does not exist: ${error.where}`, { file, where, ...(error.hint ? { hint: error.hint } : {}) });
  }
  return new TopiaryError(error.code, `value ${show(values[k])} is refused at ${error.where}: ${error.message}`, { file, where, ...(error.hint ? { hint: error.hint } : {}) });
}

/** Words for the axes in run names: the field's own name, or its whole path where two axes share a name. */
function axisLabels(resolved: readonly Resolved[]): string[] {
  const last = resolved.map((a) => String([...a.segments].reverse().find((s) => typeof s === 'string')));
  return last.map((label, i) => (last.filter((l) => l === label).length > 1 ? slug(resolved[i]!.name.replace(/[[\].]+/g, '-')) : label));
}

/**
 * Expand a grid into its runs, every one checked before any runs: axis paths (against the recipe's envelope and each
 * stage's schema with the installed plugins), every value, every file. Throws every problem at once.
 */
export function expandGrid(run: Pick<RunContext, 'container'>, grid: GridFile, options: ExpandOptions = {}): SweepPlan {
  const { file } = grid;
  const stages = installedStages(run);
  const errors: TopiaryError[] = [];

  // 1. where each axis lands: full paths as written, short forms by asking the schemas
  const resolved: Resolved[] = [];
  const shorts: GridFile['axes'] = [];
  for (const axis of grid.axes) {
    const segments = parseFieldPath(axis.name);
    if (!segments) {
      errors.push(gridError(file, `matrix.${axis.name}`, 'is not a field path', 'write it as errors name fields: stages[1].prune.sparsity, data.calibration.seed, seed'));
    } else if (segments.length === 1 && !ENVELOPE_KEYS.includes(segments[0] as string) && segments[0] !== 'matrix') {
      shorts.push(axis);
    } else {
      const problem = checkFullPath(grid.base, axis.name, segments, file);
      if (problem) errors.push(problem);
      else resolved.push({ name: axis.name, segments, values: axis.values });
    }
  }
  for (const axis of shorts) {
    const trial = clone(grid.base);
    for (const a of resolved) setAtPath(trial, a.segments, a.values[0]);
    const found = resolveShortAxis(run, trial, axis, file, stages, options);
    if (found.error) errors.push(found.error);
    else resolved.push({ name: axis.name, segments: found.segments!, values: axis.values });
  }
  throwAll(errors);
  // the grid's order, whatever order the axes were resolved in
  const ordered = grid.axes.map((a) => resolved.find((r) => r.name === a.name)!);
  const labels = axisLabels(ordered);
  const axes: SweepAxis[] = ordered.map((a, i) => ({ name: a.name, path: formatFieldPath(a.segments), label: labels[i]!, values: a.values }));

  const total = axes.reduce((n, a) => n * a.values.length, 1);
  const maxRuns = options.maxRuns ?? 10_000;
  if (total > maxRuns) {
    throw gridError(file, 'matrix', `expands to ${total} runs, more than ${maxRuns}`, `${axes.map((a) => `${a.name}: ${a.values.length}`).join(' × ')}; split the grid`);
  }

  // 2. every combination, the first axis outermost, each recipe checked as `topiary run` checks one
  const name = gridName(grid);
  const dir = sweepDirOf(grid, options.out);
  const seen = new Set<string>();
  const points: Array<Omit<SweepPoint, 'id' | 'runDir'> & { slugId: string; combo: unknown[] }> = [];
  for (let n = 0; n < total; n++) {
    const combo: unknown[] = [];
    let rest = n;
    for (let i = axes.length - 1; i >= 0; i--) {
      const count = axes[i]!.values.length;
      combo[i] = axes[i]!.values[rest % count];
      rest = Math.floor(rest / count);
    }
    const slugId = axes.map((a, i) => `${a.label}-${slug(combo[i])}`).join('_');
    const raw = clone(grid.base);
    axes.forEach((a, i) => setAtPath(raw, ordered[i]!.segments, clone(combo[i])));
    delete raw.output;
    if (options.backend !== undefined) raw.backend = options.backend;
    const { recipe, errors: problems } = recipeProblems(run, raw, file, stages, { ...options, paths: true });
    for (const problem of problems) {
      const told = attribute(problem, axes, combo, file);
      const key = `${told.code} ${told.describe()}`;
      if (!seen.has(key)) {
        seen.add(key);
        errors.push(told);
      }
    }
    if (!recipe || problems.length > 0) continue;
    const values = Object.fromEntries(axes.map((a, i) => [a.name, combo[i]]));
    points.push({ slugId, combo, values, document: recipeDocument({ ...recipe, name: `${name} · ${slugId}` }) });
  }
  throwAll(errors);

  // two values can read alike in a folder name (`a/x.txt`, `b/x.txt`): those runs get a hash of their values too
  const ids = points.map((p) => (points.filter((q) => q.slugId === p.slugId).length > 1 ? `${p.slugId}-${hashOf(p.combo, 6)}` : p.slugId));
  return {
    file,
    name,
    dir,
    id: `${slug(basename(dir))}-${hashOf(dir)}`,
    axes,
    points: points.map((p, i) => ({
      id: ids[i]!,
      values: p.values,
      document: ids[i] === p.slugId ? p.document : { ...p.document, name: `${name} · ${ids[i]}` },
      runDir: join(dir, 'runs', ids[i]!),
    })),
  };
}
