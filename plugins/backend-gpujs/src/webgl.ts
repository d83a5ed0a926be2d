/**
 * Whether gpu.js can have a real WebGL context here, and a virtual X display to give it one.
 *
 * In Node, gpu.js reaches WebGL through headless-gl (the `gl` package, gpu.js's optional dependency, a native
 * addon built from source with ANGLE over the system's OpenGL). On Linux, ANGLE's GL backend opens the X display
 * named by `DISPLAY` (GLX), so a WebGL context needs both the built addon and an X server: a real one on a GPU
 * machine, or Xvfb, whose OpenGL is Mesa's software rasteriser (llvmpipe) — real WebGL shaders, on the CPU.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** What a WebGL context through headless-gl reports, or why there is none. */
export type WebGLProbe =
  | {
      ok: true;
      /** The OpenGL renderer under ANGLE, e.g. `ANGLE (Mesa/X.org llvmpipe (LLVM 15.0.6, 256 bits) OpenGL 4.5 core)`. */
      renderer: string;
      /** The context's version as headless-gl reports it, e.g. `WebGL 1.0 stack-gl 8.1.6`. */
      version: string;
      /** `DISPLAY` at the time of the probe. */
      display: string;
      /** True when the renderer is a software rasteriser (llvmpipe, softpipe, swrast): WebGL, but not on a GPU. */
      software: boolean;
    }
  | { ok: false; reason: string; fix: string };

type GlFactory = (width: number, height: number, options?: Record<string, unknown>) => GlContext | null;
interface GlContext {
  RENDERER: number;
  VERSION: number;
  getParameter(p: number): unknown;
  /** headless-gl's own: the underlying GL string (`getParameter(RENDERER)` is always "ANGLE"). */
  _getParameterDirect?(p: number): unknown;
  getExtension(name: string): { destroy?(): void } | null;
}

/** headless-gl as gpu.js loads it (`gl` is gpu.js's dependency, not ours: resolve it from gpu.js's folder). */
export function loadHeadlessGl(): { ok: true; gl: GlFactory; version: string } | { ok: false; reason: string } {
  let fromGpuJs: NodeRequire;
  try {
    fromGpuJs = createRequire(require.resolve('gpu.js'));
  } catch (err) {
    return { ok: false, reason: `gpu.js is not installed (${firstLine(err)})` };
  }
  try {
    const gl = fromGpuJs('gl') as GlFactory;
    const version = (fromGpuJs('gl/package.json') as { version: string }).version;
    return { ok: true, gl, version };
  } catch (err) {
    const msg = firstLine(err);
    const notBuilt = /Could not locate the bindings file/.test(msg);
    return {
      ok: false,
      reason: notBuilt
        ? 'headless-gl (the `gl` package) is installed but its native addon is not built (its build was not allowed, or failed: see the `pnpm install` log)'
        : `headless-gl (the \`gl\` package) does not load here: ${msg}`,
    };
  }
}

const SOFTWARE_RENDERER = /llvmpipe|softpipe|swrast|software/i;

const probes = new Map<string, WebGLProbe>();
const openProbeContexts: GlContext[] = [];

/**
 * Create (and destroy) a 1×1 WebGL context through headless-gl and report its renderer. Cached per `DISPLAY`
 * value, since that is what decides the answer once the addon loads.
 */
export function probeWebGL(): WebGLProbe {
  const display = process.env.DISPLAY ?? '';
  const cached = probes.get(display);
  if (cached) return cached;
  const probe = probeUncached(display);
  probes.set(display, probe);
  return probe;
}

function probeUncached(display: string): WebGLProbe {
  const loaded = loadHeadlessGl();
  if (!loaded.ok) {
    return {
      ok: false,
      reason: loaded.reason,
      fix: 'build it: allow its install script (root package.json "pnpm.onlyBuiltDependencies": ["gl"]) and install its build dependencies (`apt-get install python3 make g++ pkg-config libx11-dev libxi-dev libxext-dev libgl-dev`), then `pnpm install` (offline: `npm_config_nodedir=/usr` for the Node headers)',
    };
  }
  if (process.platform === 'linux' && !display) {
    return {
      ok: false,
      reason: 'no X display (DISPLAY is unset): headless-gl on Linux opens its OpenGL context through an X server',
      fix: 'run under an X server (on a GPU machine, one that drives the GPU), or under Xvfb for Mesa llvmpipe: `xvfb-run -a <command>` (`apt-get install xvfb`)',
    };
  }
  let ctx: GlContext | null = null;
  try {
    ctx = loaded.gl(1, 1, { preserveDrawingBuffer: true });
  } catch (err) {
    return { ok: false, reason: `headless-gl ${loaded.version} failed to create a WebGL context on DISPLAY=${display}: ${firstLine(err)}`, fix: 'check the X server (`xdpyinfo`) and its GLX (`glxinfo -B`)' };
  }
  if (!ctx) {
    return {
      ok: false,
      reason: `headless-gl ${loaded.version} could not create a WebGL context on DISPLAY=${display} (no X server there, or it has no GLX)`,
      fix: 'start an X server with GLX (Xvfb has it: `xvfb-run -a <command>`), and check it with `glxinfo -B`',
    };
  }
  const renderer = String(ctx._getParameterDirect?.(ctx.RENDERER) ?? ctx.getParameter(ctx.RENDERER));
  const version = String(ctx.getParameter(ctx.VERSION));
  // Kept open on purpose (1×1, one per display): an Xvfb started by startVirtualDisplay ends when its last
  // client disconnects, so this context ties the server's life to this process, even one that is killed.
  openProbeContexts.push(ctx);
  return { ok: true, renderer, version, display, software: SOFTWARE_RENDERER.test(renderer) };
}

/**
 * A WebGL context for gpu.js if this machine can give one: the current `DISPLAY` if it works; with no `DISPLAY`
 * on Linux, a fresh Xvfb (when headless-gl is built and Xvfb installed). `probe` says what was found, or why
 * there is none; `started` is the Xvfb this call started (stop it when done; it also ends with this process).
 */
export async function ensureWebGL(): Promise<{ probe: WebGLProbe; started?: VirtualDisplay }> {
  const probe = probeWebGL();
  if (probe.ok || process.platform !== 'linux' || process.env.DISPLAY || !loadHeadlessGl().ok) return { probe };
  const started = await startVirtualDisplay();
  if (typeof started === 'string') return { probe: { ok: false, reason: `${probe.reason}, and ${started}`, fix: probe.fix } };
  return { probe: probeWebGL(), started };
}

/** A virtual X display (Xvfb) this process started; `stop()` ends it and restores `DISPLAY`. */
export interface VirtualDisplay {
  display: string;
  pid: number;
  stop(): void;
}

/** Is Xvfb on PATH? */
export function hasXvfb(): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir && existsSync(`${dir}/Xvfb`));
}

/**
 * Start Xvfb on a free display number (Xvfb picks it: `-displayfd`), point `DISPLAY` at it, and return a handle
 * that stops it. The server also ends when this process exits. Resolves to a reason string when Xvfb is not
 * installed or does not start within `timeoutMs`.
 */
export function startVirtualDisplay(timeoutMs = 10_000): Promise<VirtualDisplay | string> {
  if (!hasXvfb()) return Promise.resolve('Xvfb is not installed (`apt-get install xvfb`)');
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      // 24-bit colour: GLX visuals need it; the screen size does not matter for off-screen WebGL contexts.
      // -terminate: the server ends when its last client disconnects (the probe's context, see probeWebGL), so it
      // cannot outlive a test worker that is killed before its exit handler runs.
      child = spawn('Xvfb', ['-displayfd', '1', '-screen', '0', '64x64x24', '-nolisten', 'tcp', '-terminate'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      resolve(`Xvfb did not start: ${firstLine(err)}`);
      return;
    }
    let out = '';
    let err = '';
    let settled = false;
    const previous = process.env.DISPLAY;
    const kill = (): void => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    };
    const onExit = (): void => kill();
    const finish = (value: VirtualDisplay | string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (typeof value === 'string') {
        kill();
        process.off('exit', onExit);
      }
      resolve(value);
    };
    const timer = setTimeout(() => finish(`Xvfb did not report a display within ${timeoutMs} ms${err ? `: ${err.trim().split('\n').pop()}` : ''}`), timeoutMs);
    process.on('exit', onExit);
    child.on('error', (e) => finish(`Xvfb did not start: ${e.message}`));
    child.on('exit', (code, signal) => finish(`Xvfb exited (${signal ?? `code ${code}`}) before it was ready${err ? `: ${err.trim().split('\n').pop()}` : ''}`));
    child.stderr!.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-2000);
    });
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^(\d+)\n/.exec(out);
      if (!m) return;
      const display = `:${m[1]}`;
      process.env.DISPLAY = display;
      child.stdout!.removeAllListeners('data');
      child.removeAllListeners('exit');
      child.unref();
      (child.stdout as unknown as { unref?(): void }).unref?.();
      (child.stderr as unknown as { unref?(): void }).unref?.();
      finish({
        display,
        pid: child.pid!,
        stop() {
          kill();
          process.off('exit', onExit);
          if (process.env.DISPLAY === display) {
            if (previous === undefined) delete process.env.DISPLAY;
            else process.env.DISPLAY = previous;
          }
        },
      });
    });
  });
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}
