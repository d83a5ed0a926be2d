// @ts-check
/**
 * The formats fuzzed, each seeded with a real shipped file from assets/ (or eval's shipped task subsets), with the
 * mutations that matter for that format and the loader a user's command would call. A case passes when the loader
 * either accepts the mutated input (a bit flip inside a weight is still a valid file) or throws a TopiaryError that
 * names the file or the field at fault. Anything else — another exception, a TopiaryError naming nothing, a hang,
 * a huge allocation — is a failure.
 */
import { mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { createContainer, loadRecipe, PluginHost, selectPlugins } from '@topiary/kernel';
import schedulers from '@topiary/scheduler-basic';
import { loadModel } from '@topiary/model-llama';
import { loadTokenizer } from '@topiary/corpus';
import { defaultTaskRegistry, loadTaskItems } from '@topiary/eval';
import { resolveTrainOptions } from '@topiary/trainer';

/** The installed schedules a train stage resolves its schedules from. */
const withSchedulers = new PluginHost(createContainer()).use(schedulers).freeze();
import { applyBytes, applyJson, applyJsonText, byteMutation, EDGE_INTS, jsonPaths, jsonTextMutation, jsonMutation } from './mutate.mjs';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const models = join(repoRoot, 'assets', 'models');
const hfDir = join(models, 'stories260K-hf');

/** Release a loaded model (tfjs variables) or anything else with dispose(). */
function release(x) {
  if (x && typeof x.dispose === 'function') x.dispose();
}

// ------------------------------------------------------------------------------------------------ safetensors

const stSeed = readFileSync(join(hfDir, 'model.safetensors'));
const stHeaderLen = Number(stSeed.readBigUInt64LE(0));
const stHeader = JSON.parse(stSeed.subarray(8, 8 + stHeaderLen).toString('utf8'));
const stBody = stSeed.subarray(8 + stHeaderLen);

/** Paths into the header that a damaged or hostile file changes: dtypes, shapes, offsets, entries. */
function headerPaths(doc) {
  const out = [];
  for (const [name, e] of Object.entries(doc)) {
    out.push([name]);
    if (e && typeof e === 'object') for (const k of Object.keys(e)) out.push([name, k]);
    if (e && Array.isArray(e.shape)) e.shape.forEach((_, i) => out.push([name, 'shape', i]));
    if (e && Array.isArray(e.data_offsets)) e.data_offsets.forEach((_, i) => out.push([name, 'data_offsets', i]));
  }
  out.push([]);
  return out;
}

const DTYPES = ['F32', 'F16', 'BF16', 'F64', 'I8', 'U8', 'I32', 'I64', 'BOOL', 'F8_E4M3', 'f32', 'float32', '', 'F3', 'F32 ', 'F128'];

/** @param {Buffer} header @param {Buffer} body @param {bigint} [len] */
function stFile(header, body, len) {
  const l = Buffer.alloc(8);
  l.writeBigUInt64LE(len ?? BigInt(header.length));
  return Buffer.concat([l, header, body]);
}

const safetensors = {
  name: 'safetensors',
  description: 'stories260K-hf/model.safetensors (config.json beside it): header length, JSON header, dtypes, shapes, offsets, body',
  arbitrary: fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('bytes'), m: byteMutation(8 + stHeaderLen) }) },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('length'),
        value: fc.oneof(
          fc.constantFrom('eof', 'eof+1', 'max', 'huge', 'zero', 'minus1', 'plus1'),
          fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        ),
      }),
    },
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('header'), m: jsonMutation() }) },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant('tensor'),
        entry: fc.nat(),
        op: fc.oneof(
          fc.record({ kind: fc.constant('inflate'), dim: fc.nat(3), value: fc.constantFrom(...EDGE_INTS, 1e15, 2 ** 62) }),
          fc.record({ kind: fc.constant('dtype'), value: fc.constantFrom(...DTYPES) }),
          fc.record({ kind: fc.constant('offsets'), begin: fc.constantFrom(...EDGE_INTS, 'end'), end: fc.constantFrom(...EDGE_INTS, 'size', 'size+1') }),
          fc.record({ kind: fc.constant('rank'), extra: fc.array(fc.constantFrom(0, 1, 2, 2 ** 31), { maxLength: 3 }) }),
        ),
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('body'), m: fc.oneof(fc.record({ kind: fc.constant('truncate'), at: fc.double({ min: 0, max: 1, noNaN: true }).map((f) => ({ frac: f })) }), byteMutation(1)) }) },
  ),
  /** @param {any} m */
  bytes(m) {
    switch (m.kind) {
      case 'bytes':
        return applyBytes(stSeed, m.m);
      case 'length': {
        const size = BigInt(stSeed.length);
        const map = { eof: size - 8n, 'eof+1': size - 7n, max: (1n << 64n) - 1n, huge: 1n << 40n, zero: 0n, minus1: BigInt(stHeaderLen - 1), plus1: BigInt(stHeaderLen + 1) };
        const v = typeof m.value === 'bigint' ? m.value : map[m.value];
        const b = Buffer.from(stSeed);
        b.writeBigUInt64LE(v, 0);
        return b;
      }
      case 'header': {
        const doc = applyJson(stHeader, m.m, headerPaths(stHeader));
        return stFile(Buffer.from(JSON.stringify(doc) ?? 'null'), stBody);
      }
      case 'tensor': {
        const doc = structuredClone(stHeader);
        const names = Object.keys(doc).filter((k) => k !== '__metadata__');
        const e = doc[names[m.entry % names.length]];
        const op = m.op;
        if (op.kind === 'inflate') e.shape[op.dim % e.shape.length] = op.value;
        else if (op.kind === 'dtype') e.dtype = op.value;
        else if (op.kind === 'offsets') {
          const size = stBody.length;
          e.data_offsets = [op.begin === 'end' ? e.data_offsets[1] : op.begin, op.end === 'size' ? size : op.end === 'size+1' ? size + 1 : op.end];
        } else e.shape = [...e.shape, ...op.extra];
        return stFile(Buffer.from(JSON.stringify(doc)), stBody);
      }
      case 'body':
        return Buffer.concat([stSeed.subarray(0, 8 + stHeaderLen), applyBytes(stBody, m.m)]);
      default:
        throw new Error(m.kind);
    }
  },
  /** @param {string} dir */
  setup(dir) {
    copyFileSync(join(hfDir, 'config.json'), join(dir, 'config.json'));
    return join(dir, 'model.safetensors');
  },
  /** @param {string} file */
  async load(file) {
    release(await loadModel(dirname(file)));
  },
};

// ------------------------------------------------------------------------------------------------ config.json

const cfgSeed = readFileSync(join(hfDir, 'config.json'));
const configJson = {
  name: 'config.json',
  description: 'stories260K-hf/config.json with the real model.safetensors: wrong types, absurd sizes, missing fields, broken JSON',
  arbitrary: jsonTextMutation(),
  bytes: (/** @type {any} */ m) => applyJsonText(cfgSeed, m),
  /** @param {string} dir */
  setup(dir) {
    copyFileSync(join(hfDir, 'model.safetensors'), join(dir, 'model.safetensors'));
    return join(dir, 'config.json');
  },
  /** @param {string} file */
  async load(file) {
    release(await loadModel(dirname(file)));
  },
};

// ------------------------------------------------------------------------------------------------ llama2.c checkpoint

const binSeed = readFileSync(join(models, 'stories260K', 'stories260K.bin'));
/** A v1 header (magic, version, same seven ints, shared flag, padding) in front of v1-ordered data is not needed: the
 * header parser is shared, so v1/v2 headers are fuzzed by writing the magic over the v0 file's first bytes. */
const llama2c = {
  name: 'llama2c-checkpoint',
  description: 'stories260K.bin (v0) and the same header re-labelled v1/v2: header ints, magic/version, truncation, trailing bytes',
  arbitrary: fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('field'), field: fc.nat(6), value: fc.oneof(fc.constantFrom(...EDGE_INTS), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.integer({ min: 1, max: 4096 })) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('versioned'), version: fc.constantFrom(1, 2, 0, 3, -1), group: fc.constantFrom(0, 1, 2, 32, 64, -64, 2 ** 31 - 1), shared: fc.nat(2) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('bytes'), m: byteMutation(28) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('tail'), extra: fc.integer({ min: -4096, max: 4096 }) }) },
  ),
  /** @param {any} m */
  bytes(m) {
    const b = Buffer.from(binSeed);
    switch (m.kind) {
      case 'field':
        b.writeInt32LE(m.value | 0, 4 * m.field);
        return b;
      case 'versioned': {
        const h = Buffer.alloc(256);
        h.writeUInt32LE(0x616b3432, 0);
        h.writeInt32LE(m.version, 4);
        binSeed.copy(h, 8, 0, 28);
        h.writeUInt8(m.shared, 36);
        h.writeInt32LE(m.group | 0, 37);
        return Buffer.concat([h, binSeed.subarray(28)]);
      }
      case 'bytes':
        return applyBytes(binSeed, m.m);
      case 'tail':
        return m.extra >= 0 ? Buffer.concat([b, Buffer.alloc(m.extra, 7)]) : b.subarray(0, b.length + m.extra);
      default:
        throw new Error(m.kind);
    }
  },
  setup: (/** @type {string} */ dir) => join(dir, 'model.bin'),
  /** @param {string} file */
  async load(file) {
    release(await loadModel(file));
  },
};

// ------------------------------------------------------------------------------------------------ tokenizers

const tokBinSeed = readFileSync(join(models, 'stories260K', 'tok512.bin'));
const SAMPLE = 'Once upon a time, Lily saw a big dog! 3 ☃ \u00e9';
const tokenizerBin = {
  name: 'tokenizer.bin',
  description: 'tok512.bin (llama2.c tokenizer): max_token_length, scores, piece lengths, truncation; then encode/decode',
  arbitrary: fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('bytes'), m: byteMutation(tokBinSeed.length) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('len'), entry: fc.nat(511), value: fc.oneof(fc.constantFrom(...EDGE_INTS), fc.integer({ min: -8, max: 64 })) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('max'), value: fc.constantFrom(...EDGE_INTS, 1024, 1025) }) },
  ),
  /** @param {any} m */
  bytes(m) {
    if (m.kind === 'bytes') return applyBytes(tokBinSeed, m.m);
    const b = Buffer.from(tokBinSeed);
    if (m.kind === 'max') {
      b.writeUInt32LE(m.value >>> 0, 0);
      return b;
    }
    // walk to the entry and overwrite its length field
    let off = 4;
    for (let i = 0; i < m.entry && off + 8 <= b.length; i++) off += 8 + b.readInt32LE(off + 4);
    if (off + 8 <= b.length) b.writeUInt32LE(m.value >>> 0, off + 4);
    return b;
  },
  setup: (/** @type {string} */ dir) => join(dir, 'tok.bin'),
  /** @param {string} file */
  async load(file) {
    const tok = await loadTokenizer(file);
    tok.decode(tok.encode(SAMPLE, { bos: true }));
  },
};

const tokJsonSeed = readFileSync(join(hfDir, 'tokenizer.json'));
const tokJsonDoc = JSON.parse(tokJsonSeed.toString('utf8'));
/** Bias toward the fields a tokenizer library trusts: model type/vocab/merges, added tokens, normalizer, decoder. */
function tokPaths(doc) {
  const all = jsonPaths(doc);
  const hot = all.filter((p) => p.length <= 3 || p[0] === 'added_tokens');
  return [...hot, ...all.filter((_, i) => i % 50 === 0)];
}
const tokenizerJson = {
  name: 'tokenizer.json',
  description: 'stories260K-hf/tokenizer.json (tokenizer_config.json beside it): wrong types in model/vocab/merges/added tokens; then encode/decode',
  arbitrary: jsonTextMutation(),
  bytes: (/** @type {any} */ m) => applyJsonText(tokJsonSeed, m, tokPaths),
  /** @param {string} dir */
  setup(dir) {
    copyFileSync(join(hfDir, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
    return join(dir, 'tokenizer.json');
  },
  /** @param {string} file */
  async load(file) {
    const tok = await loadTokenizer(file);
    tok.decode(tok.encode(SAMPLE, { bos: true }));
  },
};
void tokJsonDoc;

// ------------------------------------------------------------------------------------------------ recipes

const recipeSeedDoc = {
  seed: 3,
  backend: 'wasm',
  plugins: ['wanda'],
  model: { from: 'assets/models/stories260K/stories260K.bin', tokenizer: 'assets/models/stories260K/tok512.bin' },
  data: { calibration: { path: 'assets/data/tinystories_val_head.txt', samples: 8, seqlen: 32, seed: 0 }, train: 'assets/data/tinystories_val_head.txt' },
  stages: [
    { prune: { method: 'wanda', sparsity: 0.5, pattern: '2:4' } },
    {
      train: {
        model: { vocabSize: 512, dim: 32, nLayers: 2, nHeads: 4, hiddenDim: 64, maxSeqLen: 64 },
        data: { train: 'corpus.txt', tokenizer: 'tok512.bin', seqLen: 16, validFraction: 0.1 },
        batchSize: 4,
        steps: 30,
        lr: { schedule: 'cosine', lr: 1e-2, warmup: 2 },
        eval: { every: 10, batches: 2 },
        checkpoint: { every: 1, keep: 3 },
        prune: { targetRatio: 0.5, schedule: { name: 'linear', start: 2, end: 20, every: 2 }, saliency: 'taylor-fisher', accumulator: { name: 'ema', beta: 0.9 }, kinds: ['head', 'ffn-channel'] },
      },
    },
    { eval: { perplexity: ['assets/data/tinystories_val_head.txt'], tasks: ['hellaswag-mini'] } },
  ],
  output: 'runs/fuzz',
};
/** YAML rendering of the seed (flow style for nested maps, as the shipped recipes are written). */
function toYaml(v, indent = '') {
  if (Array.isArray(v)) return v.map((x) => `\n${indent}- ${toYaml(x, `${indent}  `).trimStart()}`).join('');
  if (v && typeof v === 'object') {
    return Object.entries(v)
      .map(([k, x]) => (x && typeof x === 'object' && !Array.isArray(x) && Object.values(x).every((y) => typeof y !== 'object') ? `\n${indent}${k}: ${JSON.stringify(x).replace(/"(\w+)":/g, '$1: ')}` : `\n${indent}${k}:${typeof x === 'object' && x !== null ? toYaml(x, `${indent}  `) : ` ${JSON.stringify(x)}`}`))
      .join('');
  }
  return JSON.stringify(v);
}
const recipeYamlSeed = Buffer.from(`${toYaml(recipeSeedDoc).trimStart()}\n`);
const YAML_NASTY = ['&a [1]', '*a', '!!js/function', '<<: *a', '\t', ': :', '- - -', '{', '[', '"', "'", '%YAML 1.1', '---', '...', '? x', '|', '>', '#', '\u0000', '\uFEFF'];
const aliasBomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
for (let i = 0; i < 9; i++) aliasBomb.push(`${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(9).fill(`*${String.fromCharCode(97 + i)}`).join(',')}]`);
aliasBomb.push('stages: [ { eval: {} } ]');

const installedForRecipes = ['wanda', 'magnitude', 'sparsegpt', 'depth', 'llm-pruner', 'backend-wasm'].map((name) => ({ name, packageName: `@topiary/${name}`, version: '0.1.0', dir: '/nonexistent', provides: {} }));

const recipe = {
  name: 'recipe',
  description: 'a prune + train + eval recipe (YAML and JSON): wrong types, unknown keys, YAML syntax, alias bombs; loadRecipe + train-stage validation + plugin selection',
  arbitrary: fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('json'), m: jsonMutation(), asYaml: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('yaml-bytes'), m: byteMutation(recipeYamlSeed.length) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('yaml-insert'), pos: fc.double({ min: 0, max: 1, noNaN: true }), text: fc.constantFrom(...YAML_NASTY) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('bomb'), keep: fc.integer({ min: 3, max: 11 }) }) },
  ),
  /** @param {any} m */
  bytes(m) {
    switch (m.kind) {
      case 'json': {
        const doc = applyJson(recipeSeedDoc, m.m);
        return Buffer.from(m.asYaml && doc && typeof doc === 'object' ? `${toYaml(doc).trimStart()}\n` : `${JSON.stringify(doc) ?? ''}\n`);
      }
      case 'yaml-bytes':
        return applyBytes(recipeYamlSeed, m.m);
      case 'yaml-insert': {
        const p = Math.floor(m.pos * recipeYamlSeed.length);
        return Buffer.concat([recipeYamlSeed.subarray(0, p), Buffer.from(m.text), recipeYamlSeed.subarray(p)]);
      }
      case 'bomb':
        return Buffer.from(`${aliasBomb.slice(0, m.keep).join('\n')}\n`);
      default:
        throw new Error(m.kind);
    }
  },
  setup: (/** @type {string} */ dir) => join(dir, 'recipe.yaml'),
  /** @param {string} file */
  async load(file) {
    const r = loadRecipe(file);
    selectPlugins(installedForRecipes, r.plugins);
    for (const stage of r.stages) {
      if (stage.kind !== 'train') continue;
      try {
        resolveTrainOptions(stage.options, stage.where, withSchedulers, { seed: r.seed, out: r.output, modelFrom: r.model?.from, tokenizer: r.model?.tokenizer, trainData: r.data.train });
      } catch (e) {
        // the CLI locates stage errors in the recipe file the same way
        if (e && typeof e === 'object' && /** @type {any} */ (e).name === 'TopiaryError' && !(/** @type {any} */ (e).file)) throw /** @type {any} */ (e).inFile(file);
        throw e;
      }
    }
  },
};

// ------------------------------------------------------------------------------------------------ eval task files

const evalData = join(repoRoot, 'packages', 'eval', 'data');
const taskSeeds = [
  { task: 'arc-easy-dev-mini', text: readFileSync(join(evalData, 'arc_easy_dev.head200.jsonl'), 'utf8').split('\n').slice(0, 12).join('\n') },
  { task: 'hellaswag-mini', text: readFileSync(join(evalData, 'hellaswag_val.head100.jsonl'), 'utf8').split('\n').slice(0, 12).join('\n') },
];
const registry = defaultTaskRegistry();
const evalTask = {
  name: 'eval-task',
  description: 'ARC (AI2 schema) and HellaSwag JSONL subsets shipped with @topiary/eval: one line mutated structurally, or bytes flipped/truncated (invalid UTF-8 too)',
  arbitrary: fc.record({
    seed: fc.nat(1),
    line: fc.nat(11),
    m: fc.oneof({ weight: 3, arbitrary: fc.record({ kind: fc.constant('json'), m: jsonMutation() }) }, { weight: 1, arbitrary: fc.record({ kind: fc.constant('bytes'), m: byteMutation(4096) }) }),
  }),
  /** @param {any} m */
  bytes(m) {
    const seed = taskSeeds[m.seed];
    if (m.m.kind === 'bytes') return applyBytes(Buffer.from(seed.text), m.m.m);
    const lines = seed.text.split('\n');
    const i = m.line % lines.length;
    lines[i] = JSON.stringify(applyJson(JSON.parse(lines[i]), m.m.m)) ?? '';
    return Buffer.from(lines.join('\n'));
  },
  setup: (/** @type {string} */ dir) => join(dir, 'task.jsonl'),
  /** @param {string} file @param {any} m */
  async load(file, m) {
    await loadTaskItems(registry.get(taskSeeds[m.seed].task), undefined, { dataFile: file });
  },
};

export const targets = [safetensors, configJson, llama2c, tokenizerBin, tokenizerJson, recipe, evalTask];

/**
 * Run one case: write the mutated bytes, call the loader, classify the outcome.
 * @param {any} target @param {string} file @param {any} mutation
 * @returns {Promise<{ outcome: 'ok' | 'typed' | 'unnamed' | 'untyped', code?: string, message?: string, where?: string }>}
 */
export async function runCase(target, file, mutation) {
  writeFileSync(file, target.bytes(mutation));
  try {
    await target.load(file, mutation);
    return { outcome: 'ok' };
  } catch (e) {
    const err = /** @type {any} */ (e);
    if (err && err.name === 'TopiaryError' && typeof err.code === 'string') {
      const named = Boolean(err.file) || Boolean(err.where);
      return { outcome: named ? 'typed' : 'unnamed', code: err.code, message: String(err.message).slice(0, 300), where: [err.file, err.where].filter(Boolean).join(': ') };
    }
    return { outcome: 'untyped', code: err?.constructor?.name ?? typeof err, message: String(err?.stack ?? err).slice(0, 600) };
  }
}

/** A fresh folder per target for its side files (config.json beside the safetensors, ...); returns the fuzzed path. */
export function prepare(target, root) {
  const dir = join(root, target.name);
  mkdirSync(dir, { recursive: true });
  return target.setup(dir);
}

/** The mutations of one run, reproducible from (seed, count). */
export function mutations(target, count, seed) {
  return fc.sample(target.arbitrary, { numRuns: count, seed });
}
