/**
 * Field paths as a recipe's errors write them (`stages[1].prune.method`, `data.calibration.samples`): the one
 * syntax an axis is written in, so an axis and the error about it read the same.
 */

export type PathSegment = string | number;

const KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `stages[1].prune.method` → `['stages', 1, 'prune', 'method']`; undefined for anything else. */
export function parseFieldPath(text: string): PathSegment[] | undefined {
  const segments: PathSegment[] = [];
  for (const part of text.split('.')) {
    const match = /^([^[\]]+)((?:\[\d+\])*)$/.exec(part);
    if (!match || !KEY.test(match[1]!)) return undefined;
    segments.push(match[1]!);
    for (const index of match[2]!.matchAll(/\[(\d+)\]/g)) segments.push(Number(index[1]));
  }
  return segments;
}

export function formatFieldPath(segments: readonly PathSegment[]): string {
  return segments.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}

/** Whether `where` (an error's place) is `path` or lies inside it. */
export function pathContains(path: string, where: string | undefined): boolean {
  if (where === undefined || !where.startsWith(path)) return false;
  const next = where[path.length];
  return next === undefined || next === '.' || next === '[';
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Set a value at a path inside a parsed recipe, making missing mappings on the way (an axis may set
 * `data.calibration.seed` in a recipe that has no `data:`). A list index must exist: returns false when the path
 * cannot be reached (an index past the end, a field inside a scalar) and leaves the value unchanged.
 */
export function setAtPath(root: Record<string, unknown>, segments: readonly PathSegment[], value: unknown): boolean {
  let node: unknown = root;
  for (let i = 0; i < segments.length - 1; i++) {
    const key = segments[i]!;
    if (typeof key === 'number') {
      if (!Array.isArray(node) || key >= node.length) return false;
      node = node[key];
      continue;
    }
    if (!isMapping(node)) return false;
    const nextIsIndex = typeof segments[i + 1] === 'number';
    if (node[key] === undefined || node[key] === null) {
      if (nextIsIndex) return false;
      node[key] = {};
    }
    node = node[key];
  }
  const last = segments[segments.length - 1]!;
  if (typeof last === 'number') {
    if (!Array.isArray(node) || last >= node.length) return false;
    node[last] = value;
    return true;
  }
  if (!isMapping(node)) return false;
  node[last] = value;
  return true;
}
