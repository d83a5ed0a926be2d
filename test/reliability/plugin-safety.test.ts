/**
 * Plugin safety, through the CLI and loadModel: recipes can only name installed plugins; code from a path needs
 * --allow-plugin-path; pickle-based PyTorch checkpoints are refused with a pointer to safetensors.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadModel, looksLikePickle } from '@topiary/model-llama';
import { cliBin, hfDir, stories260K, tempDir, topiaryError } from './helpers.js';
// @ts-expect-error plain ESM shared with the stress scripts
import { runTrain, writeRecipe } from './resume-lib.mjs';

const fixtures = join(import.meta.dirname, 'fixtures');
const haveCli = existsSync(cliBin);
if (!haveCli) console.log(`skipping CLI plugin-safety tests: ${cliBin} is not built (run pnpm build)`);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}
const lastError = (r: Run): { code: string; message: string; where?: string; hint?: string } =>
  (JSON.parse(r.stderr.trim().split('\n').filter((l) => l.includes('"error"')).pop() ?? '{}') as { error: { code: string; message: string } }).error;

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('pickle checkpoints are refused, llama2.c .bin still loads', () => {
  for (const [name, why] of [
    ['zip-checkpoint.bin', /PyTorch pickle checkpoint \(zip archive or raw pickle\)/],
    ['legacy-pickle.bin', /PyTorch pickle checkpoint/],
  ] as const) {
    test(`${name} (written by torch.save, bench/reference/pickle_fixtures.py)`, async () => {
      const err = await topiaryError(() => loadModel(join(fixtures, name)));
      expect(err.code).toBe('E_FORMAT');
      expect(err.file).toBe(join(fixtures, name));
      expect(err.message).toMatch(why);
      expect(err.message).toMatch(/arbitrary code/);
      expect(err.hint).toMatch(/safetensors/);
    });
  }

  test('.pt / .pth / .ckpt are refused by extension, before reading', async () => {
    const dir = tempDir();
    for (const ext of ['.pt', '.pth', '.ckpt']) {
      copyFileSync(join(fixtures, 'zip-checkpoint.bin'), join(dir, `model${ext}`));
      const err = await topiaryError(() => loadModel(join(dir, `model${ext}`)));
      expect(err.code).toBe('E_FORMAT');
      expect(err.message).toContain(`${ext} files are PyTorch pickle checkpoints`);
      expect(err.hint).toMatch(/safetensors/);
    }
  });

  test('a folder holding only pytorch_model.bin is refused naming that file', async () => {
    const dir = tempDir();
    copyFileSync(join(hfDir, 'config.json'), join(dir, 'config.json'));
    copyFileSync(join(fixtures, 'zip-checkpoint.bin'), join(dir, 'pytorch_model.bin'));
    const err = await topiaryError(() => loadModel(dir));
    expect(err.code).toBe('E_FORMAT');
    expect(err.file).toBe(join(dir, 'pytorch_model.bin'));
    expect(err.hint).toMatch(/safetensors/);
  });

  test('llama2.c checkpoints still load; a v0 header with dim 640 (bytes 80 02 00 00) is not taken for a pickle', async () => {
    const model = await loadModel(stories260K);
    expect(model.config.dim).toBe(64);
    model.dispose();
    const dir = tempDir();
    const b = Buffer.from(readFileSync(stories260K).subarray(0, 64));
    b.writeInt32LE(640, 0);
    writeFileSync(join(dir, 'dim640.bin'), b);
    expect([...b.subarray(0, 3)]).toEqual([0x80, 0x02, 0x00]);
    expect(looksLikePickle(join(dir, 'dim640.bin'))).toBe(false);
    expect(looksLikePickle(join(fixtures, 'legacy-pickle.bin'))).toBe(true);
    expect(looksLikePickle(join(fixtures, 'zip-checkpoint.bin'))).toBe(true);
  });
});

describe.skipIf(!haveCli)('plugins through the CLI', () => {
  const dir = tempDir();
  const marker = join(dir, 'plugin-ran.txt');
  const pluginFile = join(dir, 'evil-plugin.mjs');
  // a plain object satisfying the plugin contract; registering it leaves a marker file behind
  writeFileSync(
    pluginFile,
    `import { writeFileSync } from 'node:fs';
export default { name: 'marker', version: '0.0.1', kernel: '^0.1.0', provides: {}, register() { writeFileSync(${JSON.stringify(marker)}, 'ran'); } };
`,
  );

  test('a recipe naming a plugin that is not installed fails with E_PLUGIN_UNKNOWN (exit 2), listing what is installed', async () => {
    const recipe = writeRecipe(dir, { steps: 3 });
    const raw = JSON.parse(readFileSync(recipe, 'utf8'));
    writeFileSync(join(dir, 'unknown.json'), JSON.stringify({ ...raw, plugins: ['no-such-pruner'] }));
    const r = (await runTrain(join(dir, 'unknown.json'), join(dir, 'out-unknown'))) as Run;
    expect(r.code).toBe(2);
    const err = lastError(r);
    expect(err.code).toBe('E_PLUGIN_UNKNOWN');
    expect(err.message).toContain('no-such-pruner');
    expect(err.where).toBe('plugins[0]');
    expect(err.hint).toMatch(/installed plugins: .*backend-wasm/);
  });

  test('a recipe cannot load code by naming a path as a plugin', async () => {
    const raw = JSON.parse(readFileSync(writeRecipe(dir, { steps: 3 }), 'utf8'));
    writeFileSync(join(dir, 'path.json'), JSON.stringify({ ...raw, plugins: [pluginFile] }));
    const r = (await runTrain(join(dir, 'path.json'), join(dir, 'out-path'))) as Run;
    expect(r.code).toBe(2);
    expect(lastError(r).code).toBe('E_PLUGIN_UNKNOWN');
    expect(existsSync(marker)).toBe(false);
  });

  test('--plugin PATH without --allow-plugin-path is refused before any code is imported; with it, the plugin registers', async () => {
    const recipe = writeRecipe(dir, { steps: 3 });
    const refused = (await runTrain(recipe, join(dir, 'out-refused'), { extraArgs: [] as string[] })) as Run;
    expect(refused.code).toBe(0); // sanity: the recipe itself runs
    const noFlag = await new Promise<Run>((resolve) => {
      import('node:child_process').then(({ execFile }) =>
        execFile(process.execPath, [cliBin, '--json', '--plugin', pluginFile, '--out', join(dir, 'out-noflag'), 'train', recipe], (error, stdout, stderr) =>
          resolve({ code: error ? (error.code as number) : 0, stdout, stderr }),
        ),
      );
    });
    expect(noFlag.code).toBe(2);
    const err = lastError(noFlag);
    expect(err.code).toBe('E_USAGE');
    expect(err.where).toBe(pluginFile);
    expect(err.hint).toContain('--allow-plugin-path');
    expect(existsSync(marker)).toBe(false);
    const allowed = await new Promise<Run>((resolve) => {
      import('node:child_process').then(({ execFile }) =>
        execFile(process.execPath, [cliBin, '--json', '--allow-plugin-path', '--plugin', pluginFile, '--out', join(dir, 'out-allowed'), 'train', recipe], (error, stdout, stderr) =>
          resolve({ code: error ? (error.code as number) : 0, stdout, stderr }),
        ),
      );
    });
    expect(allowed.code).toBe(0);
    expect(readFileSync(marker, 'utf8')).toBe('ran');
  });
});
void mkdirSync;
