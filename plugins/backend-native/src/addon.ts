/**
 * Finding, diagnosing and loading the compiled addon (native/build/Release/topiary_blas.node). Nothing is built
 * at install time: `pnpm --filter @topiary/backend-native build:native` builds it (node-gyp against the Node
 * headers on this machine and Debian's libopenblas-dev; no download).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BackendAvailability } from '@topiary/kernel';

/** What the addon exports (see native/topiary_blas.c). */
export interface BlasAddon {
  /**
   * For i < batch: C_i = op(A_i)·op(B_i) + beta·C_i, row-major, op(A) [m, k], op(B) [k, n]; strides in elements
   * (0 broadcasts). The arrays may be views onto the wasm heap: C is written in place.
   */
  sgemmStrided(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    batch: number,
    a: Float32Array,
    strideA: number,
    b: Float32Array,
    strideB: number,
    c: Float32Array,
    strideC: number,
    beta?: number,
  ): void;
  /** Row-wise softmax cross-entropy (see the kernel's FusedKernel.softmaxCrossEntropy); grad null for the loss only. */
  softmaxXent(z: Float32Array, n: number, vocab: number, targets: Int32Array, loss: Float32Array, grad: Float32Array | null, scale: number): void;
  /** One AdamW update into paramOut/mOut/vOut (see the kernel's FusedKernel.adamw). */
  adamw(
    param: Float32Array,
    grad: Float32Array,
    m: Float32Array,
    v: Float32Array,
    paramOut: Float32Array,
    mOut: Float32Array,
    vOut: Float32Array,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    decay: number,
    gradScale: number,
    bc1: number,
    bc2: number,
  ): void;
  /** RoPE with the head transpose (see the kernel's FusedKernel.ropeHeads). */
  ropeHeads(x: Float32Array, out: Float32Array, batch: number, seq: number, heads: number, headDim: number, cos: Float32Array, sin: Float32Array, backward: boolean): void;
  /** Causal softmax of [items, rows, cols] scores (see FusedKernel.causalSoftmax). */
  causalSoftmax(scores: Float32Array, probs: Float32Array, items: number, rows: number, cols: number, seq: number, scale: number): void;
  /** P·(dP − Σ dP·P)·scale per row (see FusedKernel.softmaxGrad). */
  softmaxGrad(probs: Float32Array, dProbs: Float32Array, out: Float32Array, rowCount: number, cols: number, scale: number): void;
  /** m = g·σ(g)·u (FusedKernel.swiglu). */
  swiglu(gate: Float32Array, up: Float32Array, m: Float32Array, n: number): void;
  /** SwiGLU's gradient (FusedKernel.swigluGrad). */
  swigluGrad(gate: Float32Array, up: Float32Array, dm: Float32Array, dGate: Float32Array, dUp: Float32Array, n: number): void;
  /** RMSNorm forward (FusedKernel.rmsNorm): out and the row scales r. */
  rmsNorm(x: Float32Array, weight: Float32Array, out: Float32Array, r: Float32Array, rows: number, d: number, eps: number, activeDim: number): void;
  /** RMSNorm's gradient (FusedKernel.rmsNormGrad); residual null when there is none. */
  rmsNormGrad(dh: Float32Array, x: Float32Array, r: Float32Array, weight: Float32Array, residual: Float32Array | null, dx: Float32Array, dWeight: Float32Array, rows: number, d: number, activeDim: number): void;
  /** C −= A·B on float64 row-major blocks with row strides (the kernel's PruningPrimitives.subtractProduct64). */
  subtractProduct64(m: number, n: number, k: number, a: Float64Array, lda: number, b: Float64Array, ldb: number, c: Float64Array, ldc: number): void;
  /**
   * In place on a symmetric positive definite float64 [n, n]: A⁻¹, or (upper) the upper-triangular U with
   * A⁻¹ = UᵀU (LAPACK dpotrf/dpotri). Returns 0, or k > 0 when the leading minor of order k is not positive definite.
   */
  choleskyInverse(a: Float64Array, n: number, upper: boolean): number;
  /** OpenBLAS and OpenMP threads. */
  setThreads(n: number): void;
  info(): { config: string; corename: string; threads: number };
}

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const ADDON_PATH = join(packageRoot, 'native', 'build', 'Release', 'topiary_blas.node');
export const BUILD_COMMAND = 'pnpm --filter @topiary/backend-native build:native';

const LIB_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib', '/opt/homebrew/opt/openblas/lib'];

function findOnPath(names: readonly string[]): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    for (const n of names) if (dir && existsSync(join(dir, n))) return join(dir, n);
  }
  return undefined;
}

export interface BuildPrerequisites {
  /** libopenblas.so (the link-time library from libopenblas-dev). */
  openblas: string | undefined;
  /** A C compiler. */
  compiler: string | undefined;
  /** Node's N-API headers (node_api.h). */
  nodeHeaders: string | undefined;
}

/** Which build prerequisites are present (none of this is needed once the addon is built, except libopenblas). */
export function buildPrerequisites(): BuildPrerequisites {
  const openblas = LIB_DIRS.map((d) => join(d, 'libopenblas.so')).find((p) => existsSync(p));
  const compiler = findOnPath(['cc', 'gcc', 'clang']);
  const nodeHeaderDirs = [join(dirname(dirname(process.execPath)), 'include', 'node'), '/usr/include/node', '/usr/local/include/node'];
  const nodeHeaders = nodeHeaderDirs.find((d) => existsSync(join(d, 'node_api.h')));
  return { openblas, compiler, nodeHeaders };
}

/** A one-line list of what is missing to build the addon, with the fix; undefined when nothing is. */
export function missingPrerequisites(p: BuildPrerequisites = buildPrerequisites()): { reason: string; fix: string } | undefined {
  const missing: string[] = [];
  const apt: string[] = [];
  if (!p.openblas) {
    missing.push('libopenblas (libopenblas.so, from Debian/Ubuntu libopenblas-dev)');
    apt.push('libopenblas-dev');
  }
  if (!p.compiler) {
    missing.push('a C compiler (cc/gcc/clang)');
    apt.push('gcc', 'make');
  }
  if (!p.nodeHeaders) {
    missing.push("Node's headers (node_api.h)");
    apt.push('libnode-dev');
  }
  if (missing.length === 0) return undefined;
  return { reason: `missing ${missing.join(', ')}`, fix: `apt-get install ${apt.join(' ')}, then ${BUILD_COMMAND}` };
}

let cached: { addon: BlasAddon } | { error: string } | undefined;

/**
 * OpenBLAS 0.3.21 does not recognise every recent CPU and then runs its generic SSE3 ("Prescott") kernel, several
 * times slower. When the user has not chosen a core type, name the one the CPU's flags support. Must run before
 * the library loads (OpenBLAS reads the variable once, when it is loaded).
 */
function chooseCoreType(): string | undefined {
  if (process.env['OPENBLAS_CORETYPE'] !== undefined) return undefined;
  let flags = '';
  try {
    flags = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return undefined;
  }
  const core = /\bavx512f\b/.test(flags) && /\bavx512bw\b/.test(flags) ? 'SkylakeX' : /\bavx2\b/.test(flags) ? 'Haswell' : undefined;
  if (core) process.env['OPENBLAS_CORETYPE'] = core;
  return core;
}

/** Load the addon once per process; returns it or the reason it did not load (never throws). */
export function loadAddon(): { addon: BlasAddon } | { error: string } {
  if (cached) return cached;
  if (!existsSync(ADDON_PATH)) return { error: `the addon is not built (${ADDON_PATH} is absent)` };
  chooseCoreType();
  // OpenMP's threads (fused kernels) and OpenBLAS's alternate on the same cores: spinning OpenMP workers steal
  // them from BLAS between kernels. Sleeping workers measured 1.9 → 1.45 s per 15M training step on 2 cores.
  // libgomp reads this once, when it loads with the addon; a value the user set is kept.
  process.env['OMP_WAIT_POLICY'] ??= 'PASSIVE';
  try {
    const addon = createRequire(import.meta.url)(ADDON_PATH) as BlasAddon;
    cached = { addon };
  } catch (err) {
    cached = { error: `the addon failed to load: ${err instanceof Error ? err.message : String(err)}` };
  }
  return cached;
}

/** Availability with the exact missing piece and its fix. */
export function addonAvailability(): BackendAvailability {
  if (!existsSync(ADDON_PATH)) {
    const missing = missingPrerequisites();
    if (missing) return { ok: false, reason: `the native addon is not built, and it cannot be: ${missing.reason}`, fix: missing.fix };
    return {
      ok: false,
      reason: `the native addon is not built (${ADDON_PATH} is absent; it is opt-in and never built by pnpm install)`,
      fix: `${BUILD_COMMAND} (node-gyp + libopenblas-dev, a few seconds, no download)`,
    };
  }
  const r = loadAddon();
  if ('error' in r) {
    return {
      ok: false,
      reason: r.error,
      fix: /libopenblas/.test(r.error) ? 'apt-get install libopenblas0-pthread (the runtime library), or rebuild: ' + BUILD_COMMAND : `rebuild it: ${BUILD_COMMAND}`,
    };
  }
  return { ok: true };
}
