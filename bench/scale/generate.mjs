#!/usr/bin/env node
// A seeded random LLaMA with a real shape, written as a Hugging Face folder, with bounded memory.
//
//   node bench/scale/generate.mjs --shape NAME --out DIR [--seed 0] [--shard-mb 2000] [--dtype bf16|f16|f32]
//        [--samples 128] [--seqlen 128] [--ids-out FILE] [--single-file] [--force]
//
// Writes config.json, model-0000i-of-0000N.safetensors + model.safetensors.index.json (weight_map,
// metadata.total_size) — or one model.safetensors with --single-file — and calibration-ids.bin (seeded int32 LE token
// ids, samples × seqlen, within the vocabulary) with calibration-ids.json describing it ({samples, seqlen, …}).
//
// Memory: the model is never in memory. The shard plan (which tensor goes where, every byte offset) is computed
// first, so each shard's header is known before any tensor exists; each shard is then written to
// `<name>.partial` — header, then each tensor generated and converted in chunks of 1M values, written with
// fs.writeSync — and renamed into place when complete, so a half-written shard never looks complete. The marker
// file `.topiary-generated.json` is written last; a folder whose marker matches (shape, seed, dtype, shard size,
// generator version) and whose files all have their planned sizes is left as it is ("already complete").
//
// Values: normal(0, 0.02) for the embedding, the head and every linear layer; o_proj and down_proj (the layers that
// write into the residual stream) use 0.02 / sqrt(2 · layers) (GPT-2 / Megatron-style scaled init); norms are 1.
// Each tensor has its own stream (xoshiro128** seeded from seed + the tensor's name; normals by Box–Muller), so a
// tensor's values do not depend on the shard size. Float32 → bf16/f16 rounds to nearest even.
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { shapeConfig, tensorList } from './shapes.mjs';

export const GENERATOR_VERSION = 1;
const MARKER = '.topiary-generated.json';
const CHUNK = 1 << 20; // values per generated chunk (4 MB of float32 scratch)

// ------------------------------------------------------------------------------------------------ random numbers

/** 32-bit FNV-1a of a string, mixed with a seed. */
function hash32(str, seed) {
  let h = (0x811c9dc5 ^ Math.imul(seed | 0, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < str.length; i++) h = Math.imul(h ^ str.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** xoshiro128** state (4 × uint32) from a 32-bit seed through splitmix32. */
function seedState(seed32) {
  let x = seed32 >>> 0;
  const next = () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  const s = new Uint32Array([next(), next(), next(), next()]);
  if ((s[0] | s[1] | s[2] | s[3]) === 0) s[0] = 1;
  return s;
}

/** A seeded stream: fillNormal(out, n, std) and fillInt(out, n, bound). */
export class Rng {
  constructor(seed, name) {
    this.s = seedState(hash32(name, seed));
  }

  /** n (even or odd) normal(0, std) values into out[0..n). Box–Muller on two 32-bit uniforms per pair. */
  fillNormal(out, n, std) {
    const s = this.s;
    let a = s[0], b = s[1], c = s[2], d = s[3];
    const inv = 1 / 4294967296, twoPi = 2 * Math.PI;
    for (let i = 0; i < n; i += 2) {
      let m = Math.imul(b, 5);
      const r1 = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
      let t = b << 9; c ^= a; d ^= b; b ^= c; a ^= d; c ^= t; d = (d << 11) | (d >>> 21);
      m = Math.imul(b, 5);
      const r2 = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
      t = b << 9; c ^= a; d ^= b; b ^= c; a ^= d; c ^= t; d = (d << 11) | (d >>> 21);
      const rad = Math.sqrt(-2 * Math.log((r1 + 1) * inv)) * std; // u1 in (0, 1]
      const th = twoPi * r2 * inv;
      out[i] = rad * Math.cos(th);
      if (i + 1 < n) out[i + 1] = rad * Math.sin(th);
    }
    s[0] = a; s[1] = b; s[2] = c; s[3] = d;
  }

  /** n integers uniform in [0, bound) (bound ≤ 2^31; multiply-shift, bias < bound / 2^32). */
  fillInt(out, n, bound) {
    const s = this.s;
    let a = s[0], b = s[1], c = s[2], d = s[3];
    for (let i = 0; i < n; i++) {
      const m = Math.imul(b, 5);
      const r = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
      const t = b << 9; c ^= a; d ^= b; b ^= c; a ^= d; c ^= t; d = (d << 11) | (d >>> 21);
      out[i] = Math.floor((r / 4294967296) * bound);
    }
    s[0] = a; s[1] = b; s[2] = c; s[3] = d;
  }
}

// ------------------------------------------------------------------------------------------------ dtype conversion

export const DTYPES = {
  f32: { st: 'F32', bytes: 4, torch: 'float32' },
  bf16: { st: 'BF16', bytes: 2, torch: 'bfloat16' },
  f16: { st: 'F16', bytes: 2, torch: 'float16' },
};

/** float32 bits → bf16 bits, round to nearest even (NaN kept quiet). */
function toBf16(u32, u16, n) {
  for (let i = 0; i < n; i++) {
    const x = u32[i];
    u16[i] = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
}

/** float32 bits → IEEE half bits, round to nearest even, with subnormals, overflow to ±inf. */
function f32BitsToF16(x) {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rest > half || (rest === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++; // may carry into the exponent (and to inf): correct
  return sign | h;
}

function toF16(u32, u16, n) {
  for (let i = 0; i < n; i++) u16[i] = f32BitsToF16(u32[i]);
}

// ------------------------------------------------------------------------------------------------ the shard plan

const numel = (shape) => shape.reduce((a, b) => a * b, 1);

/**
 * Tensors in state-dict order, packed greedily into shards of at most shardBytes (a tensor larger than that gets a
 * shard of its own — Hugging Face's rule); each shard's safetensors header (8-aligned, space padded) and offsets.
 */
export function planShards(cfg, { dtype = 'bf16', shardBytes = 2000e6, singleFile = false } = {}) {
  const dt = DTYPES[dtype];
  const tensors = tensorList(cfg).map((t) => ({ ...t, bytes: numel(t.shape) * dt.bytes }));
  const groups = [];
  let cur = null;
  for (const t of tensors) {
    if (!cur || (!singleFile && cur.bytes > 0 && cur.bytes + t.bytes > shardBytes)) groups.push((cur = { tensors: [], bytes: 0 }));
    cur.tensors.push(t);
    cur.bytes += t.bytes;
  }
  const n = groups.length;
  const pad5 = (i) => String(i).padStart(5, '0');
  return groups.map((g, i) => {
    const file = singleFile ? 'model.safetensors' : `model-${pad5(i + 1)}-of-${pad5(n)}.safetensors`;
    const header = {};
    let off = 0;
    for (const t of g.tensors) {
      t.offset = off;
      header[t.name] = { dtype: dt.st, shape: t.shape, data_offsets: [off, off + t.bytes] };
      off += t.bytes;
    }
    header.__metadata__ = { format: 'pt' };
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
    const headerBytes = Buffer.from(json, 'utf8');
    return { file, tensors: g.tensors, dataBytes: off, headerBytes, fileBytes: 8 + headerBytes.length + off };
  });
}

// ------------------------------------------------------------------------------------------------ writing

function std(t, cfg) {
  if (t.kind === 'norm') return null; // ones
  return t.residual ? 0.02 / Math.sqrt(2 * cfg.num_hidden_layers) : 0.02;
}

/** Writes one tensor's bytes at the file's current end (fd position), chunk by chunk. */
function writeTensor(fd, pos, t, cfg, seed, dtype, scratch) {
  const n = numel(t.shape);
  const { f32, u32, u16 } = scratch;
  const out = dtype === 'f32' ? new Uint8Array(f32.buffer) : new Uint8Array(u16.buffer);
  const bpv = DTYPES[dtype].bytes;
  const s = std(t, cfg);
  const rng = s === null ? null : new Rng(seed, t.name);
  for (let done = 0; done < n; ) {
    const k = Math.min(CHUNK, n - done);
    if (rng) rng.fillNormal(f32, k, s);
    else f32.fill(1, 0, k);
    if (dtype === 'bf16') toBf16(u32, u16, k);
    else if (dtype === 'f16') toF16(u32, u16, k);
    let w = 0;
    while (w < k * bpv) w += writeSync(fd, out, w, k * bpv - w, pos + w);
    pos += k * bpv;
    done += k;
  }
  return pos;
}

function markerFor(name, cfg, seed, dtype, shardBytes, singleFile) {
  return { generator: 'bench/scale/generate.mjs', version: GENERATOR_VERSION, shape: name, seed, dtype, shardBytes, singleFile, config: cfg };
}

/** True when dir holds a complete model of this shape/seed/dtype/sharding (marker matches, every file its size). */
export function isComplete(dir, marker, shards) {
  const m = join(dir, MARKER);
  if (!existsSync(m)) return false;
  try {
    const got = JSON.parse(readFileSync(m, 'utf8'));
    const want = JSON.parse(JSON.stringify(marker));
    if (JSON.stringify({ ...got, files: undefined, seconds: undefined, finished: undefined }) !== JSON.stringify(want)) return false;
    return shards.every((s) => existsSync(join(dir, s.file)) && statSync(join(dir, s.file)).size === s.fileBytes);
  } catch {
    return false;
  }
}

/** Seeded calibration ids: samples × seqlen int32 LE in [0, vocab), plus FILE.json ({samples, seqlen, …}). */
export function writeCalibrationIds(file, { samples = 128, seqlen = 128, vocab, seed = 0 }) {
  const ids = new Int32Array(samples * seqlen);
  const tmp = new Uint32Array(ids.length);
  new Rng(seed, 'calibration-ids').fillInt(tmp, tmp.length, vocab);
  ids.set(tmp);
  const buf = Buffer.from(ids.buffer); // int32 little-endian on every platform Node runs on here (x86-64)
  writeFileSync(`${file}.partial`, buf);
  renameSync(`${file}.partial`, file);
  const meta = { file: file.split('/').pop(), format: 'int32le', samples, seqlen, vocabSize: vocab, seed, stream: 'calibration-ids', generator: 'bench/scale/generate.mjs' };
  writeFileSync(file.replace(/\.bin$/, '') + '.json', JSON.stringify(meta, null, 2) + '\n');
  return meta;
}

/**
 * Generate (or find complete) a model. Returns { dir, name, config, shards, skipped, seconds, bytes, idsFile }.
 * log(message) receives progress lines.
 */
export function generate({ shape, out, seed = 0, shardMb = 2000, dtype = 'bf16', samples = 128, seqlen = 128, idsOut, singleFile = false, force = false, log = (s) => process.stderr.write(`${s}\n`) }) {
  if (!DTYPES[dtype]) throw new Error(`--dtype must be one of ${Object.keys(DTYPES).join(', ')} (got ${dtype})`);
  const { name, config } = shapeConfig(shape);
  config.torch_dtype = DTYPES[dtype].torch;
  const dir = resolve(out);
  const shardBytes = Math.round(shardMb * 1e6);
  const shards = planShards(config, { dtype, shardBytes, singleFile });
  const marker = markerFor(name, config, seed, dtype, shardBytes, singleFile);
  const total = shards.reduce((s, x) => s + x.dataBytes, 0);
  const idsFile = idsOut ? resolve(idsOut) : join(dir, 'calibration-ids.bin');
  mkdirSync(dir, { recursive: true });
  const idsMeta = writeCalibrationIds(idsFile, { samples, seqlen, vocab: config.vocab_size, seed });
  if (!force && isComplete(dir, marker, shards)) {
    log(`[generate] ${name}: ${dir} already holds a complete model (seed ${seed}, ${dtype}, ${shards.length} shard(s)); calibration ids ${samples} × ${seqlen} → ${idsFile}`);
    return { dir, name, config, shards, skipped: true, seconds: 0, bytes: total, idsFile, idsMeta };
  }
  rmSync(join(dir, MARKER), { force: true });
  // leftovers of an earlier generation with another plan (other shard count, half-written shards)
  const planned = new Set(shards.map((s) => s.file));
  for (const f of readdirSync(dir)) {
    if ((/^model(-\d{5}-of-\d{5})?\.safetensors(\.partial)?$/.test(f) && !planned.has(f)) || f.endsWith('.safetensors.partial')) rmSync(join(dir, f), { force: true });
  }
  const t0 = performance.now();
  log(`[generate] ${name}: ${(total / 1e9).toFixed(2)} GB of ${dtype} in ${shards.length} shard(s) → ${dir}`);
  const f32 = new Float32Array(CHUNK);
  const scratch = { f32, u32: new Uint32Array(f32.buffer), u16: new Uint16Array(CHUNK) };
  let written = 0;
  let lastLog = t0;
  for (const s of shards) {
    const partial = join(dir, `${s.file}.partial`);
    const fd = openSync(partial, 'w');
    try {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(s.headerBytes.length));
      writeSync(fd, len, 0, 8, 0);
      writeSync(fd, s.headerBytes, 0, s.headerBytes.length, 8);
      let pos = 8 + s.headerBytes.length;
      for (const t of s.tensors) {
        pos = writeTensor(fd, pos, t, config, seed, dtype, scratch);
        written += t.bytes;
        const now = performance.now();
        if (now - lastLog > 5000) {
          lastLog = now;
          const sec = (now - t0) / 1000;
          log(`[generate] ${name}: ${(written / 1e9).toFixed(2)} / ${(total / 1e9).toFixed(2)} GB, ${(written / 1e6 / sec).toFixed(0)} MB/s, ${s.file} ${t.name}; rss ${(process.memoryUsage.rss() / 2 ** 20).toFixed(0)} MB`);
        }
      }
      if (fstatSync(fd).size !== s.fileBytes) throw new Error(`${partial}: wrote ${fstatSync(fd).size} bytes, planned ${s.fileBytes}`);
    } finally {
      closeSync(fd);
    }
    renameSync(partial, join(dir, s.file));
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  if (!singleFile) {
    const weightMap = {};
    for (const s of shards) for (const t of s.tensors) weightMap[t.name] = s.file;
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n');
  } else rmSync(join(dir, 'model.safetensors.index.json'), { force: true });
  const seconds = (performance.now() - t0) / 1000;
  writeFileSync(join(dir, MARKER), JSON.stringify({ ...marker, files: shards.map((s) => ({ file: s.file, bytes: s.fileBytes })), seconds, finished: new Date().toISOString() }, null, 2) + '\n');
  log(`[generate] ${name}: done, ${(total / 1e9).toFixed(2)} GB in ${seconds.toFixed(1)} s (${(total / 1e6 / seconds).toFixed(0)} MB/s, ${(total / DTYPES[dtype].bytes / 1e6 / seconds).toFixed(1)} M values/s); peak RSS ${(peakRss() / 2 ** 20).toFixed(0)} MB`);
  return { dir, name, config, shards, skipped: false, seconds, bytes: total, idsFile, idsMeta };
}

/** This process's peak RSS in bytes (VmHWM), or the current RSS where /proc is absent. */
export function peakRss() {
  try {
    const m = readFileSync('/proc/self/status', 'utf8').match(/^VmHWM:\s+(\d+) kB/m);
    if (m) return Number(m[1]) * 1024;
  } catch {}
  return process.memoryUsage.rss();
}

// ------------------------------------------------------------------------------------------------ command line

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/generate.mjs')) {
  const argv = process.argv.slice(2);
  const arg = (flag, dflt) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : dflt);
  if (argv.includes('--help') || !arg('--shape') || !arg('--out')) {
    process.stderr.write('usage: node bench/scale/generate.mjs --shape NAME --out DIR [--seed 0] [--shard-mb 2000] [--dtype bf16|f16|f32] [--samples 128] [--seqlen 128] [--ids-out FILE] [--single-file] [--force]\n');
    process.exit(argv.includes('--help') ? 0 : 2);
  }
  const r = generate({
    shape: arg('--shape'), out: arg('--out'), seed: Number(arg('--seed', '0')), shardMb: Number(arg('--shard-mb', '2000')), dtype: arg('--dtype', 'bf16'),
    samples: Number(arg('--samples', '128')), seqlen: Number(arg('--seqlen', '128')), idsOut: arg('--ids-out'), singleFile: argv.includes('--single-file'), force: argv.includes('--force'),
  });
  process.stdout.write(`${JSON.stringify({ dir: r.dir, shape: r.name, skipped: r.skipped, seconds: r.seconds, bytes: r.bytes, shards: r.shards.map((s) => s.file), idsFile: r.idsFile, peakRssBytes: peakRss() })}\n`);
}
