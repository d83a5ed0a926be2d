// @ts-check
/**
 * Mutation generators for fuzzing file readers. Every mutation is a plain JSON descriptor produced by a
 * fast-check arbitrary (so a run is reproducible from its seed and a failing case can be printed and replayed),
 * and applied to the bytes or the parsed JSON of a real shipped file.
 *
 * Plain ESM JavaScript on purpose: the stress runner executes it in worker threads under bare Node (no TypeScript
 * loader), so a per-case timeout can terminate a case that hangs; the fast vitest subset imports the same code.
 */
import fc from 'fast-check';

// ------------------------------------------------------------------------------------------------ bytes

/** Interesting integers for length / count / shape fields. */
export const EDGE_INTS = [
  0, 1, -1, 2, 7, 8, 255, 256, 65535, 65536, 2 ** 24, 2 ** 24 - 1, 2 ** 31 - 1, -(2 ** 31), 2 ** 32 - 1, 2 ** 32, 2 ** 40, 2 ** 53 - 1,
];

/**
 * Byte-level mutations of a file: bit flips, byte sets, truncation, a 32/64-bit field overwritten with an edge
 * value, inserted or deleted bytes. `region` biases positions into [0, region) (a header), as a fraction of cases.
 * @param {number} region
 */
export function byteMutation(region = 256) {
  const pos = fc.oneof({ weight: 3, arbitrary: fc.nat({ max: Math.max(0, region - 1) }) }, { weight: 1, arbitrary: fc.double({ min: 0, max: 1, noNaN: true }).map((f) => ({ frac: f })) });
  return fc.oneof(
    fc.record({ kind: fc.constant('flip'), edits: fc.array(fc.record({ pos, bit: fc.nat({ max: 7 }) }), { minLength: 1, maxLength: 6 }) }),
    fc.record({ kind: fc.constant('set'), edits: fc.array(fc.record({ pos, value: fc.nat({ max: 255 }) }), { minLength: 1, maxLength: 4 }) }),
    fc.record({ kind: fc.constant('truncate'), at: fc.oneof(fc.nat({ max: region + 8 }), fc.double({ min: 0, max: 1, noNaN: true }).map((f) => ({ frac: f }))) }),
    fc.record({
      kind: fc.constant('int'),
      pos,
      width: fc.constantFrom(4, 8),
      value: fc.oneof(fc.constantFrom(...EDGE_INTS), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
    }),
    fc.record({ kind: fc.constant('insert'), pos, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }).map((a) => [...a]) }),
    fc.record({ kind: fc.constant('delete'), pos, count: fc.integer({ min: 1, max: 64 }) }),
  );
}

/** @param {number | {frac: number}} p @param {number} len */
function at(p, len) {
  if (typeof p === 'number') return Math.min(p, Math.max(0, len - 1));
  return Math.min(Math.floor(p.frac * len), Math.max(0, len - 1));
}

/**
 * Apply a byte mutation; returns a new Buffer.
 * @param {Buffer} src @param {any} m
 * @returns {Buffer}
 */
export function applyBytes(src, m) {
  const b = Buffer.from(src);
  const len = b.length;
  if (len === 0) return b;
  switch (m.kind) {
    case 'flip':
      for (const e of m.edits) b[at(e.pos, len)] ^= 1 << e.bit;
      return b;
    case 'set':
      for (const e of m.edits) b[at(e.pos, len)] = e.value;
      return b;
    case 'truncate':
      return b.subarray(0, typeof m.at === 'number' ? Math.min(m.at, len - 1) : Math.floor(m.at.frac * len));
    case 'int': {
      const p = Math.min(at(m.pos, len), Math.max(0, len - m.width));
      if (len < m.width) return b;
      if (m.width === 4) b.writeUInt32LE(m.value >>> 0, p);
      else b.writeBigInt64LE(BigInt.asIntN(64, BigInt(m.value)), p);
      return b;
    }
    case 'insert': {
      const p = at(m.pos, len);
      return Buffer.concat([b.subarray(0, p), Buffer.from(m.bytes), b.subarray(p)]);
    }
    case 'delete': {
      const p = at(m.pos, len);
      return Buffer.concat([b.subarray(0, p), b.subarray(p + m.count)]);
    }
    default:
      throw new Error(`unknown byte mutation ${m.kind}`);
  }
}

// ------------------------------------------------------------------------------------------------ JSON

/** Values of the wrong type (or absurd magnitude) dropped into JSON fields. */
export const WRONG_VALUES = [
  null, true, false, 0, -1, 1.5, -0.5, 1e308, -1e308, 2 ** 31, 2 ** 53, 2 ** 64, 1e-320, '', 'x', '-1', '1e9', '__proto__', 'NaN',
  [], [0], [-1], [1e12, 1e12], [null], ['x'], {}, { a: 1 }, { __proto__: null }, [[1, 2], [3]],
];

/** A structural JSON mutation: pick the k-th path (modulo the number of paths) and change it. */
export function jsonMutation() {
  return fc.record({
    path: fc.nat(),
    op: fc.oneof(
      { weight: 5, arbitrary: fc.record({ kind: fc.constant('replace'), value: fc.oneof(fc.constantFrom(...WRONG_VALUES), fc.jsonValue({ maxDepth: 2 })) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete') }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('scale'), factor: fc.constantFrom(-1, 0, 2, 3, 1000, 2 ** 20, 2 ** 31, 2 ** 40, 0.5) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('rename'), name: fc.string({ maxLength: 8 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('stringify') }) },
    ),
    more: fc.nat({ max: 2 }),
  });
}

/**
 * Every path to a value in a JSON document (objects and arrays descended; long arrays sampled at both ends).
 * @param {any} v @param {(string|number)[]} prefix @param {(string|number)[][]} out
 */
export function jsonPaths(v, prefix = [], out = []) {
  out.push(prefix);
  if (Array.isArray(v)) {
    const idx = v.length <= 8 ? [...v.keys()] : [0, 1, 2, v.length - 2, v.length - 1];
    for (const i of idx) jsonPaths(v[i], [...prefix, i], out);
  } else if (v && typeof v === 'object') {
    const keys = Object.keys(v);
    const pick = keys.length <= 40 ? keys : [...keys.slice(0, 20), ...keys.slice(-20)];
    for (const k of pick) jsonPaths(v[k], [...prefix, k], out);
  }
  return out;
}

/**
 * Apply a JSON mutation to a deep copy of `doc`; `paths` (from `jsonPaths`) may be restricted by the caller to
 * bias toward interesting fields.
 * @param {any} doc @param {any} m @param {(string|number)[][]} [paths]
 */
export function applyJson(doc, m, paths) {
  let copy = structuredClone(doc);
  const all = paths ?? jsonPaths(copy);
  const steps = 1 + m.more;
  for (let s = 0; s < steps; s++) {
    const path = all[(m.path + s * 7919) % all.length];
    if (!path) continue;
    copy = applyAt(copy, path, m.op);
  }
  return copy;
}

/** @param {any} root @param {(string|number)[]} path @param {any} op */
function applyAt(root, path, op) {
  if (path.length === 0) {
    return op.kind === 'replace' ? structuredClone(op.value) : root;
  }
  let parent = root;
  for (const k of path.slice(0, -1)) {
    if (parent === null || typeof parent !== 'object') return root;
    parent = parent[k];
  }
  if (parent === null || typeof parent !== 'object') return root;
  const key = path[path.length - 1];
  const cur = parent[key];
  switch (op.kind) {
    case 'replace':
      parent[key] = structuredClone(op.value);
      break;
    case 'delete':
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else delete parent[key];
      break;
    case 'scale':
      if (typeof cur === 'number') parent[key] = cur * op.factor;
      else if (Array.isArray(cur)) parent[key] = cur.map((x) => (typeof x === 'number' ? x * op.factor : x));
      else parent[key] = op.factor;
      break;
    case 'rename':
      if (!Array.isArray(parent)) {
        delete parent[key];
        parent[op.name] = cur;
      }
      break;
    case 'stringify':
      parent[key] = JSON.stringify(cur) ?? 'undefined';
      break;
  }
  return root;
}

/** Mutate JSON text: structurally (then serialise), or byte-level on the text. */
export function jsonTextMutation() {
  return fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('json'), m: jsonMutation() }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('bytes'), m: byteMutation(4096) }) },
  );
}

/**
 * @param {Buffer} text @param {any} m @param {(doc: any) => (string|number)[][]} [pathsOf]
 * @returns {Buffer}
 */
export function applyJsonText(text, m, pathsOf) {
  if (m.kind === 'bytes') return applyBytes(text, m.m);
  const doc = JSON.parse(text.toString('utf8'));
  const out = applyJson(doc, m.m, pathsOf ? pathsOf(doc) : undefined);
  return Buffer.from(JSON.stringify(out, null, 1));
}
