/**
 * The native tfjs backends: `@tensorflow/tfjs-node` (CPU) and `@tensorflow/tfjs-node-gpu` (CUDA), which both run
 * libtensorflow 2.9.1 through an N-API addon. Neither is installed by default: their install script downloads
 * libtensorflow from outside the npm registry, which fails on machines without that access, and then the addon
 * or the library is missing. `available()` finds out exactly which piece is missing before anything is loaded,
 * then loads the package inside a try/catch, and says how to fix what it found.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { TopiaryError, z, type BackendAvailability, type BackendCapabilities, type OptionsOf, type PruningPrimitives, type TensorBackend } from '@topiary/kernel';
import { genericPrimitives } from '@topiary/linalg';

export type NativeVariant = 'cpu' | 'gpu';

/** The backend's options, declared once. */
export const nativeBackendOptions = z
  .object({
    searchPaths: z
      .array(z.string())
      .readonly()
      .optional()
      .meta({ description: "folders to resolve the tfjs-node package from, first match wins (default: the working directory, then this plugin's own folder)" }),
    nvidiaDriverFile: z.string().optional().meta({ description: 'where to look for the NVIDIA driver (default /proc/driver/nvidia/version; GPU variant only)' }),
  })
  .strict();

export type NativeBackendOptions = OptionsOf<typeof nativeBackendOptions>;

/** The libtensorflow the 4.22.0 packages are built against. */
export const LIBTENSORFLOW_VERSION = '2.9.1';
const TFJS_NODE_VERSION = '4.22.0';

interface Found {
  dir: string;
  version: string;
}

function packageName(variant: NativeVariant): string {
  return variant === 'gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
}

function locate(name: string, searchPaths: readonly string[]): Found | undefined {
  for (const from of searchPaths) {
    try {
      const pj = createRequire(join(from, 'noop.js')).resolve(`${name}/package.json`);
      const version = (JSON.parse(readFileSync(pj, 'utf8')) as { version?: string }).version ?? '0.0.0';
      return { dir: dirname(pj), version };
    } catch {
      /* not resolvable from here */
    }
  }
  return undefined;
}

/** `lib/napi-v*\/tfjs_binding.node` (where node-pre-gyp puts the addon), or undefined. */
function findAddon(dir: string): string | undefined {
  const lib = join(dir, 'lib');
  if (!existsSync(lib)) return undefined;
  for (const entry of readdirSync(lib).sort().reverse()) {
    const file = join(lib, entry, 'tfjs_binding.node');
    if (entry.startsWith('napi-v') && existsSync(file)) return file;
  }
  return undefined;
}

function libtensorflowName(): string {
  return process.platform === 'darwin' ? 'libtensorflow.2.dylib' : process.platform === 'win32' ? 'tensorflow.dll' : 'libtensorflow.so.2';
}

/** libtensorflow next to the addon (where install copies it) or in deps/lib (where it is downloaded to). */
function findLibTensorflow(dir: string, addon: string | undefined): string | undefined {
  const candidates = [join(dir, 'deps', 'lib', libtensorflowName())];
  if (addon) candidates.unshift(join(dirname(addon), libtensorflowName()));
  return candidates.find((f) => existsSync(f));
}

function offlineFix(name: string, variant: NativeVariant, dir: string): string {
  const archive = `libtensorflow-${variant}-${process.platform === 'darwin' ? 'darwin' : 'linux'}-x86_64-${LIBTENSORFLOW_VERSION}.tar.gz`;
  return (
    `with access to storage.googleapis.com run \`npm rebuild ${name}\` (its install script downloads libtensorflow ${LIBTENSORFLOW_VERSION}); ` +
    `offline: copy ${archive} from a machine that has it, unpack it into ${join(dir, 'deps')} (so that ${join('deps', 'lib', libtensorflowName())} exists), ` +
    `then build the addon against it with \`npm rebuild ${name} --build-addon-from-source\` (needs python3, make and a C++ compiler); ` +
    `or use --backend wasm, which needs no native build`
  );
}

/** Static checks of an installed package, before anything is loaded. */
export function inspectNativeInstall(variant: NativeVariant, options: NativeBackendOptions = {}): BackendAvailability & { dir?: string } {
  const name = packageName(variant);
  const searchPaths = options.searchPaths ?? [process.cwd(), dirname(fileURLToPath(import.meta.url))];
  const found = locate(name, searchPaths);
  if (!found) {
    return {
      ok: false,
      reason: `${name} is not installed (it is an optional peer dependency of @topiary/backend-${variant === 'gpu' ? 'node-gpu' : 'node'})`,
      fix:
        `\`npm install ${name}@${TFJS_NODE_VERSION}\` in your project (its install script downloads libtensorflow ${LIBTENSORFLOW_VERSION}; with pnpm, allow it: \`pnpm approve-builds\`)` +
        (variant === 'gpu' ? '; it needs an NVIDIA GPU with CUDA 11.2 and cuDNN 8.1' : ''),
    };
  }
  if (found.version !== TFJS_NODE_VERSION) {
    return {
      ok: false,
      dir: found.dir,
      reason: `${name} ${found.version} is installed at ${found.dir}, but Topiary pins tfjs ${TFJS_NODE_VERSION} (two tfjs versions would be two separate engines)`,
      fix: `\`npm install ${name}@${TFJS_NODE_VERSION}\``,
    };
  }
  const addon = findAddon(found.dir);
  if (!addon) {
    return {
      ok: false,
      dir: found.dir,
      reason: `${name} is installed at ${found.dir} but its native addon (lib/napi-v*/tfjs_binding.node) is missing: its install script did not run or could not download libtensorflow`,
      fix: offlineFix(name, variant, found.dir),
    };
  }
  if (!findLibTensorflow(found.dir, addon)) {
    return {
      ok: false,
      dir: found.dir,
      reason: `${name} has its addon (${addon}) but not libtensorflow ${LIBTENSORFLOW_VERSION} (${libtensorflowName()} is in neither ${dirname(addon)} nor deps/lib)`,
      fix: offlineFix(name, variant, found.dir),
    };
  }
  if (variant === 'gpu') {
    const driver = options.nvidiaDriverFile ?? '/proc/driver/nvidia/version';
    if (!existsSync(driver)) {
      return {
        ok: false,
        dir: found.dir,
        reason: `no NVIDIA driver found (${driver} is absent): tfjs-node-gpu needs an NVIDIA GPU`,
        fix: 'run on a machine with an NVIDIA GPU, its driver, CUDA 11.2 and cuDNN 8.1; elsewhere use --backend node or wasm',
      };
    }
  }
  return { ok: true, dir: found.dir };
}

export class NativeBackend implements TensorBackend {
  readonly name: string;
  readonly engine = 'tensorflow';
  readonly priority: number;
  readonly primitives: PruningPrimitives = genericPrimitives;
  private loaded: BackendAvailability | undefined;

  constructor(
    private readonly variant: NativeVariant,
    private readonly options: NativeBackendOptions = {},
  ) {
    this.name = variant === 'gpu' ? 'node-gpu' : 'node';
    // libtensorflow (oneDNN, all cores) beats single-threaded wasm; the GPU beats both.
    this.priority = variant === 'gpu' ? 90 : 70;
  }

  async available(): Promise<BackendAvailability> {
    if (this.loaded) return this.loaded;
    const inspected = inspectNativeInstall(this.variant, this.options);
    if (!inspected.ok) return { ok: false, reason: inspected.reason, fix: inspected.fix };
    const name = packageName(this.variant);
    try {
      // Loading it registers the `tensorflow` backend with the tfjs it depends on: it must be ours.
      const req = createRequire(join(inspected.dir!, 'package.json'));
      const theirs = req.resolve('@tensorflow/tfjs');
      const ours = createRequire(import.meta.url).resolve('@tensorflow/tfjs');
      if (theirs !== ours) {
        return (this.loaded = {
          ok: false,
          reason: `${name} resolves its own copy of @tensorflow/tfjs (${theirs}), not the one Topiary uses (${ours})`,
          fix: `install both from one project so they dedupe: \`npm install ${name}@${TFJS_NODE_VERSION} @tensorflow/tfjs@${TFJS_NODE_VERSION}\``,
        });
      }
      req(name);
      if (!tf.findBackendFactory('tensorflow')) throw new Error('it loaded but registered no "tensorflow" backend');
      return (this.loaded = { ok: true });
    } catch (err) {
      const message = err instanceof Error ? err.message.split('\n')[0]! : String(err);
      return (this.loaded = {
        ok: false,
        reason: `${name} failed to load: ${message}`,
        fix: /libcud|cudnn|CUDA/i.test(message)
          ? 'install CUDA 11.2 and cuDNN 8.1 and put their lib folders on LD_LIBRARY_PATH'
          : offlineFix(name, this.variant, inspected.dir!),
      });
    }
  }

  async init(): Promise<void> {
    const availability = await this.available();
    if (!availability.ok) {
      throw new TopiaryError('E_BACKEND', `backend ${this.name} cannot load: ${availability.reason}`, { where: `backend ${this.name}`, hint: availability.fix });
    }
    if (!(await tf.setBackend('tensorflow'))) {
      throw new TopiaryError('E_BACKEND', `tf.setBackend("tensorflow") failed for backend ${this.name}`, { where: `backend ${this.name}` });
    }
    await tf.ready();
  }

  capabilities(): BackendCapabilities {
    return {
      device: this.variant === 'gpu' ? 'gpu' : 'cpu',
      // libtensorflow's intra-op pool uses every core it sees.
      threads: this.variant === 'gpu' ? 1 : availableParallelism(),
      simd: this.variant === 'cpu',
      float64: false,
      notes: [
        `libtensorflow ${LIBTENSORFLOW_VERSION} through ${packageName(this.variant)} (optional peer dependency)`,
        this.variant === 'gpu' ? 'CUDA 11.2 / cuDNN 8.1; unverified on our machines (no GPU)' : 'oneDNN kernels on all cores',
      ],
    };
  }
}
