/**
 * `org/name` model ids resolved from the local Hugging Face cache — never from the network. The cache layout is the
 * huggingface_hub one: `<cache>/models--<org>--<name>/refs/<revision>` holds a commit hash, and
 * `<cache>/models--<org>--<name>/snapshots/<hash>/` the files. The cache is `HF_HUB_CACHE`, else `$HF_HOME/hub`,
 * else `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub` (huggingface_hub's constants.py order).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

const HUB_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9._/-]+)?$/;
const MODEL_FILE = /\.(bin|safetensors|json|gguf|pt|pth|ckpt)$/i;

/** Whether a path that does not exist here reads as a Hugging Face Hub id (`org/name`, optionally `@revision`). */
export function looksLikeHubId(path: string): boolean {
  return !isAbsolute(path) && HUB_ID.test(path) && !MODEL_FILE.test(path) && !path.startsWith('.');
}

/** The Hugging Face hub cache folder, as huggingface_hub computes it from the environment. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return join(env.HF_HOME, 'hub');
  return join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface', 'hub');
}

export interface HubSnapshot {
  /** The snapshot folder, when the id is in the cache. */
  path?: string;
  /** Where it was looked for (for the error when it is not there). */
  looked: string;
  revision: string;
}

/**
 * The cached snapshot of `org/name[@revision]` (revision default `main`: the hash in `refs/main`; a full commit hash
 * names its snapshot folder directly). Reads only the local cache.
 */
export function resolveHubSnapshot(id: string, env: NodeJS.ProcessEnv = process.env): HubSnapshot {
  const [repo, revision = 'main'] = id.split('@') as [string, string?];
  const repoDir = join(hubCacheDir(env), `models--${repo.replace('/', '--')}`);
  const ref = join(repoDir, 'refs', revision);
  let hash = revision;
  if (existsSync(ref)) hash = readFileSync(ref, 'utf8').trim();
  const snapshot = join(repoDir, 'snapshots', hash);
  if (existsSync(snapshot) && statSync(snapshot).isDirectory()) return { path: snapshot, looked: snapshot, revision };
  // no ref (a cache filled by hand or by another tool): one snapshot only is unambiguous
  const snapshots = join(repoDir, 'snapshots');
  if (revision === 'main' && !existsSync(ref) && existsSync(snapshots)) {
    const all = readdirSync(snapshots).filter((d) => statSync(join(snapshots, d)).isDirectory());
    if (all.length === 1) return { path: join(snapshots, all[0]!), looked: snapshots, revision };
  }
  return { looked: existsSync(ref) ? snapshot : ref, revision };
}

/** A model argument as a local path: itself when it exists, else the cached snapshot of a Hub id, else undefined. */
export function localModelPath(path: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (existsSync(path)) return path;
  if (looksLikeHubId(path)) return resolveHubSnapshot(path, env).path;
  return undefined;
}
