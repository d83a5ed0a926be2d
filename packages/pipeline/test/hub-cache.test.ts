import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hubCacheDir, loadModelWithTokenizer, localModelPath, modelPathError, resolveHubSnapshot } from '../src/index.js';

const stories = resolve(__dirname, '..', '..', '..', 'assets', 'models', 'stories260K-hf');

/** A Hugging Face hub cache as huggingface_hub lays it out: refs/main → snapshots/<hash>/. */
function cacheWith(id: string, hash = 'a'.repeat(40)): string {
  const cache = mkdtempSync(join(tmpdir(), 'topiary-hf-cache-'));
  const repo = join(cache, `models--${id.replace('/', '--')}`);
  mkdirSync(join(repo, 'refs'), { recursive: true });
  writeFileSync(join(repo, 'refs', 'main'), `${hash}\n`);
  cpSync(stories, join(repo, 'snapshots', hash), { recursive: true });
  return cache;
}

describe('Hub ids from the local Hugging Face cache (never the network)', () => {
  it('finds the cache as huggingface_hub does: HF_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME, ~/.cache', () => {
    expect(hubCacheDir({ HF_HUB_CACHE: '/c', HF_HOME: '/h' })).toBe('/c');
    expect(hubCacheDir({ HF_HOME: '/h' })).toBe('/h/hub');
    expect(hubCacheDir({ XDG_CACHE_HOME: '/x' })).toBe('/x/huggingface/hub');
  });

  it('resolves org/name to the snapshot refs/main names, and loads the model from it', async () => {
    const cache = cacheWith('karpathy/stories260K');
    const env = { HF_HUB_CACHE: cache };
    const snap = resolveHubSnapshot('karpathy/stories260K', env);
    expect(snap.path).toBe(join(cache, 'models--karpathy--stories260K', 'snapshots', 'a'.repeat(40)));
    expect(resolveHubSnapshot(`karpathy/stories260K@${'a'.repeat(40)}`, env).path).toBe(snap.path);
    expect(localModelPath('karpathy/stories260K', env)).toBe(snap.path);
    const saved = process.env.HF_HUB_CACHE;
    process.env.HF_HUB_CACHE = cache;
    try {
      expect(modelPathError('karpathy/stories260K', '--model')).toBeUndefined();
      // streamed (headers only): no tensor backend is needed to find and open the snapshot's files
      const loaded = await loadModelWithTokenizer({ model: 'karpathy/stories260K' }, { needTokenizer: true, model: { residency: 'block' } });
      expect(loaded.modelPath).toBe(snap.path);
      expect(loaded.model.config.nLayers).toBe(5);
      loaded.model.dispose();
    } finally {
      if (saved === undefined) delete process.env.HF_HUB_CACHE;
      else process.env.HF_HUB_CACHE = saved;
    }
  });

  it('an id that is not cached says where it looked and that nothing is downloaded', () => {
    const cache = mkdtempSync(join(tmpdir(), 'topiary-hf-empty-'));
    const saved = process.env.HF_HUB_CACHE;
    process.env.HF_HUB_CACHE = cache;
    try {
      const e = modelPathError('meta-llama/Llama-3.2-1B', '--model')!;
      expect(e).toMatchObject({ code: 'E_USAGE', where: '--model' });
      expect(e.message).toContain(join(cache, 'models--meta-llama--Llama-3.2-1B', 'refs', 'main'));
      expect(e.message).toContain('nothing is downloaded');
    } finally {
      if (saved === undefined) delete process.env.HF_HUB_CACHE;
      else process.env.HF_HUB_CACHE = saved;
    }
  });
});
