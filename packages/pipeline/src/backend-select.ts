/**
 * Choosing the tensor backend a run uses: a name from `--backend` / `backend:` in a recipe, or `auto`.
 * Every installed backend plugin binds a `TensorBackend` under `Tokens.TensorBackend`; this resolves them all,
 * asks each whether it can load here (`available()` never throws) and explains the choice.
 */
import { resolveAllOrNone, TopiaryError, Tokens, type BackendAvailability, type DependencyContainer, type TensorBackend } from '@topiary/kernel';

export interface BackendChoice {
  backend: TensorBackend;
  /** One line for people: which backend and why (`auto` lists what it passed over). */
  message: string;
  /** What every installed backend said about itself (only those asked: a named backend asks only itself). */
  considered: ReadonlyArray<{ name: string; priority: number; availability: BackendAvailability }>;
}

/** Where a bad backend name comes from, for error messages. */
const WHERE = '--backend';

function installedNames(all: readonly TensorBackend[]): string {
  return all
    .map((b) => b.name)
    .sort()
    .join(', ');
}

async function availabilityOf(backend: TensorBackend): Promise<BackendAvailability> {
  try {
    return await backend.available();
  } catch (err) {
    // The contract says never throw; a plugin that does still must not take `auto` down with it.
    const reason = err instanceof Error ? err.message : String(err);
    return { ok: false, reason: `available() threw: ${reason}`, fix: `report this to the ${backend.name} backend plugin` };
  }
}

/**
 * The backend called `name`, or for `auto` the highest-priority backend that is available here.
 * Throws E_PLUGIN_UNKNOWN (listing the installed backends) for an unknown name and E_BACKEND (with the backend's
 * own reason and fix) for one that cannot load here.
 */
export async function selectBackend(container: DependencyContainer, name: string): Promise<BackendChoice> {
  const all = resolveAllOrNone(container, Tokens.TensorBackend);
  if (all.length === 0) {
    throw new TopiaryError('E_BACKEND', 'no tensor backend plugin is installed', {
      where: WHERE,
      hint: 'install one, e.g. `pnpm add @topiary/backend-wasm` (the default, no native build)',
    });
  }
  if (name === 'auto') {
    const ordered = [...all].sort((a, b) => b.priority - a.priority || a.name.localeCompare(b.name));
    const considered: Array<{ name: string; priority: number; availability: BackendAvailability }> = [];
    for (const backend of ordered) considered.push({ name: backend.name, priority: backend.priority, availability: await availabilityOf(backend) });
    const winner = considered.find((c) => c.availability.ok);
    if (!winner) {
      const reasons = considered.map((c) => `${c.name}: ${c.availability.ok ? 'ok' : c.availability.reason}`).join('; ');
      const fixes = considered.map((c) => (c.availability.ok ? '' : `${c.name}: ${c.availability.fix}`)).filter(Boolean);
      throw new TopiaryError('E_BACKEND', `backend auto: none of the installed backends can load here (${reasons})`, {
        where: WHERE,
        hint: fixes.join('; '),
      });
    }
    const backend = ordered.find((b) => b.name === winner.name)!;
    const skipped = considered
      .slice(0, considered.indexOf(winner))
      .map((c) => `${c.name} unavailable (${c.availability.ok ? 'ok' : c.availability.reason})`);
    const others = considered.filter((c) => c !== winner).map((c) => `${c.name} (${c.priority})`);
    const why = [`highest priority available (${winner.priority})`];
    if (others.length) why.push(`installed: ${others.join(', ')}`);
    if (skipped.length) why.push(`passed over: ${skipped.join('; ')}`);
    return { backend, considered, message: `backend auto → ${backend.name}: ${why.join('; ')}` };
  }
  const backend = all.find((b) => b.name === name);
  if (!backend) {
    throw new TopiaryError('E_PLUGIN_UNKNOWN', `unknown backend "${name}"`, {
      where: WHERE,
      hint: `installed backends: ${installedNames(all)} (or auto)`,
    });
  }
  const availability = await availabilityOf(backend);
  if (!availability.ok) {
    throw new TopiaryError('E_BACKEND', `backend ${name} cannot load here: ${availability.reason}`, {
      where: WHERE,
      hint: availability.fix,
    });
  }
  return {
    backend,
    considered: [{ name: backend.name, priority: backend.priority, availability }],
    message: `backend ${backend.name} (engine ${backend.engine}): as requested`,
  };
}

/** `selectBackend` then `init()`: the chosen engine is active in tfjs when this resolves. */
export async function activateBackend(container: DependencyContainer, name: string): Promise<BackendChoice> {
  const choice = await selectBackend(container, name);
  try {
    await choice.backend.init();
  } catch (err) {
    if (err instanceof TopiaryError) throw err;
    throw new TopiaryError('E_BACKEND', `backend ${choice.backend.name} failed to initialise: ${err instanceof Error ? err.message : String(err)}`, {
      where: WHERE,
      hint: name === 'auto' ? 'name a backend explicitly (--backend cpu is the slow but always-working reference)' : 'try --backend auto or --backend cpu',
      cause: err,
    });
  }
  return choice;
}
