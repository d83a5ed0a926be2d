/**
 * The built page in a real browser (Debian's headless Chromium, driven over the DevTools protocol by
 * puppeteer-core; nothing is downloaded): it opens the bundled stories260K, prunes it with Wanda at 50 %, and its
 * perplexity before and after must equal what the CLI prints for the same model, method, calibration and text
 * (to 1e-6); the pruned model's greedy story must equal the CLI's from its own pruned output. Bad input (a file
 * that is not a model, a damaged .bin, a model over the page's memory limit) gives a message naming the file;
 * Cancel stops a running prune and leaves the page usable; the download is a loadable safetensors folder. The
 * same page served without COOP/COEP (not cross-origin isolated) runs single-threaded with the same numbers. Every
 * other installed method runs in the page too (magnitude, SparseGPT, 2:4, OWL, depth, LLM-Pruner), and a slimmed
 * model downloads as GGUF.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import puppeteer, { type Browser, type ElementHandle, type Page } from 'puppeteer-core';
import { readSafetensorsIndex } from '@topiary/model-llama';
import { serveStatic, type Served } from './serve.js';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const app = join(here, '..');
const root = join(app, '..', '..');
const dist = join(app, 'dist');
const cli = join(root, 'apps', 'cli', 'dist', 'bin.js');
const model = join(root, 'assets', 'models', 'stories260K-hf');
const text = join(root, 'assets', 'data', 'tinystories_val_head.txt');
/** Where the test writes its screenshot (README and docs/ use a copy). */
export const SCREENSHOT = join(app, 'test-results', 'web-wanda50.png');

const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
if (!chromium) console.log('skipped: the browser test needs Debian chromium (apt-get install chromium), which is absent');
const missingBuild = !existsSync(join(dist, 'index.html')) || !existsSync(cli);
if (chromium && missingBuild) console.log('skipped: build first (pnpm -s turbo run build): apps/web/dist or apps/cli/dist is missing');

/** Wait until the page is idle again (no job running) and return the message box's text and kind. */
async function settled(page: Page, timeout = 60_000): Promise<{ text: string; kind: string }> {
  await page.waitForFunction(() => document.body.dataset.busy === undefined && !(document.getElementById('message') as HTMLElement).hidden, { timeout });
  return page.$eval('#message', (el) => ({ text: el.textContent ?? '', kind: (el as HTMLElement).dataset.kind ?? '' }));
}

async function ready(page: Page): Promise<{ threads: number; isolated: boolean; cores: number }> {
  await page.waitForFunction(() => document.body.dataset.ready === 'true', { timeout: 60_000 });
  return page.evaluate(() => ({
    threads: Number((document.getElementById('engine') as HTMLElement).dataset.threads),
    isolated: globalThis.crossOriginIsolated,
    cores: navigator.hardwareConcurrency,
  }));
}

/** Load a text file through one of the page's file fields and wait until the page shows its name. */
async function loadText(page: Page, field: 'calibration-file' | 'eval-file', file: string): Promise<void> {
  await ((await page.$(`#${field}`)) as ElementHandle<HTMLInputElement>).uploadFile(file);
  const label = field === 'calibration-file' ? 'calibration-name' : 'eval-name';
  await page.waitForFunction((id: string) => document.getElementById(id)!.textContent !== '' && !document.getElementById(id)!.textContent!.startsWith('default'), {}, label);
}

async function openExample(page: Page): Promise<void> {
  await page.click('#example');
  const opened = await settled(page);
  expect(opened).toEqual({ text: 'opened stories260K: 260,032 parameters', kind: 'ok' });
}

async function perplexities(page: Page): Promise<{ original: number; pruned: number | undefined }> {
  await page.click('#evaluate');
  expect((await settled(page)).kind).toBe('ok');
  return page.evaluate(() => {
    const value = (id: string) => (document.getElementById(id) as HTMLElement).dataset.value;
    const pruned = value('ppl-pruned');
    return { original: Number(value('ppl-original')), pruned: pruned === undefined ? undefined : Number(pruned) };
  });
}

describe.skipIf(!chromium || missingBuild)('apps/web in headless Chromium', () => {
  let browser: Browser;
  let isolated: Served;
  let plain: Served;
  const work = mkdtempSync(join(tmpdir(), 'topiary-web-'));
  /** What the CLI prints for the same job (started before the browser, read when needed). */
  let reference: Promise<{ before: number; after: number; story: string }>;
  /**
   * The calibration and evaluation text, loaded into the page from a file: the head of the bundled TinyStories text
   * (~50,000 tokens; tokenizing all 800 KB takes the tokenizer library seconds each time a worker starts).
   */
  const head = join(work, 'tinystories-head.txt');

  beforeAll(async () => {
    const bundled = readFileSync(text);
    writeFileSync(head, bundled.subarray(0, bundled.lastIndexOf(0x0a, 100_000) + 1));
    reference = (async () => {
      const out = join(work, 'cli-wanda50');
      const pruned = await run(process.execPath, [cli, 'prune', '--model', model, '--method', 'wanda', '--sparsity', '0.5', '--calibration', head, '--samples', '32', '--seqlen', '256', '--eval', head, '--eval-limit', '32', '--out', out, '--json']);
      const result = JSON.parse(pruned.stdout.trim().split('\n').pop()!) as { perplexity: { before: number; after: number } };
      const story = await run(process.execPath, [cli, 'generate', '--model', out, '--prompt', 'Once upon a time', '--max-tokens', '80', '--json']);
      return { ...result.perplexity, story: (JSON.parse(story.stdout) as { fullText: string }).fullText };
    })();
    reference.catch(() => {}); // awaited in the tests that use it
    isolated = await serveStatic(dist, { isolated: true });
    plain = await serveStatic(dist, { isolated: false });
    browser = await puppeteer.launch({ executablePath: chromium!, headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', `--user-data-dir=${join(work, 'profile')}`] });
  });

  afterAll(async () => {
    await browser?.close();
    await isolated?.close();
    await plain?.close();
  });

  it('prunes stories260K with Wanda 50 %: perplexity equals the CLI’s to 1e-6, the same story, charts, download, cancel', async () => {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(isolated.url);
    const engine = await ready(page);
    // served with COOP/COEP: cross-origin isolated, the GEMM on every core the browser reports
    expect(engine.isolated).toBe(true);
    expect(engine.threads).toBe(Math.min(engine.cores, 16));

    await openExample(page);
    expect(await page.$eval('#layers table', (t) => (t as HTMLTableElement).rows.length)).toBe(1 + 5); // header + 5 blocks
    expect(await page.$eval('#layers', (el) => el.textContent)).toContain('q_proj [64, 64]');

    // Wanda 50 % with the quickstart's settings (32 × 256 calibration tokens, seed 0: the page's defaults), on a
    // text file loaded for calibration and evaluation
    await loadText(page, 'calibration-file', head);
    await loadText(page, 'eval-file', head);
    expect(await page.$eval('#method', (el) => (el as HTMLSelectElement).value)).toBe('wanda');
    expect(await page.$eval('#option-sparsity', (el) => (el as HTMLInputElement).value)).toBe('0.5');
    await page.click('#prune');
    expect(await settled(page, 90_000)).toEqual({ text: 'pruned with wanda', kind: 'ok' });
    const summary = await page.$eval('#prune-summary', (el) => el.textContent ?? '');
    expect(summary).toMatch(/sparsity 50\.0 % · parameters 260,032 → 146,752 · calibration 32 × 256 tokens from tinystories-head\.txt$/);
    // the report's per-layer sparsity chart: one bar per block, every one at 0.5
    const bars = await page.$$eval('#charts svg.bar-chart rect.bar title', (ts) => ts.map((t) => t.textContent ?? ''));
    expect(bars).toEqual([0, 1, 2, 3, 4].map((i) => `L${i} sparsity: 0.5`));

    const ppl = await perplexities(page);
    const cli = await reference;
    expect(Math.abs(ppl.original - cli.before)).toBeLessThan(1e-6);
    expect(Math.abs(ppl.pruned! - cli.after)).toBeLessThan(1e-6);
    console.log(`page ppl ${ppl.original} → ${ppl.pruned}; CLI ${cli.before} → ${cli.after}`);
    expect(await page.$eval('#nz-pruned', (el) => el.textContent)).toBe('146,752');

    // the same prompt on both models, side by side; the pruned one tells the CLI's pruned model's story
    await page.click('#compare-generate');
    await page.waitForFunction(() => document.body.dataset.busy === undefined && (document.getElementById('story-pruned') as HTMLElement).dataset.tokens !== undefined, { timeout: 30_000 });
    const stories = await page.evaluate(() => ({ original: document.getElementById('story-original')!.textContent ?? '', pruned: document.getElementById('story-pruned')!.textContent ?? '' }));
    expect(stories.original).toMatch(/^Once upon a time, there was a little girl named Lily\./);
    expect(stories.pruned).toBe(cli.story);
    expect(stories.pruned).not.toBe(stories.original);
    // streamed: the story arrived token by token, not at the end
    expect(Number(await page.$eval('#story-pruned', (el) => (el as HTMLElement).dataset.chunks))).toBeGreaterThan(20);

    // download: safetensors + config (+ the tokenizer), written by the worker, saved by the browser
    const downloads = join(work, 'downloads');
    mkdirSync(downloads);
    const cdp = await page.createCDPSession();
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads });
    await page.click('#download-safetensors');
    await page.waitForFunction(() => document.body.dataset.busy === undefined && (document.getElementById('download-text') as HTMLElement).dataset.files !== undefined, { timeout: 30_000 });
    const expected = ['wanda-config.json', 'wanda-generation_config.json', 'wanda-model.safetensors', 'wanda-tokenizer.json', 'wanda-tokenizer_config.json'];
    const finished = () => readdirSync(downloads).filter((f) => !f.endsWith('.crdownload')).sort();
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (expected.some((f) => !finished().includes(f)) || readdirSync(downloads).some((f) => f.endsWith('.crdownload')))) await new Promise((r) => setTimeout(r, 100));
    expect(finished()).toEqual(expected);
    const index = readSafetensorsIndex(join(downloads, 'wanda-model.safetensors'));
    expect(index.entries.get('model.layers.0.self_attn.q_proj.weight')?.shape).toEqual([64, 64]);

    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.evaluate(() => document.querySelector('details')?.setAttribute('open', ''));
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(existsSync(SCREENSHOT)).toBe(true);

    // Cancel in the middle of a prune: the worker is replaced, the model reopened, the page usable
    await page.click('#prune');
    await page.waitForFunction(() => Number((document.getElementById('progress') as HTMLProgressElement).value) > 0, { timeout: 30_000 });
    await page.click('#cancel');
    expect(await settled(page)).toEqual({ text: 'cancelled: the worker was stopped and the model reopened', kind: 'ok' });
    expect(await page.$eval('#ppl-pruned', (el) => el.textContent)).toBe('—');
    await page.click('#generate');
    await page.waitForFunction(() => document.body.dataset.busy === undefined && (document.getElementById('generated') as HTMLElement).dataset.tokens === '80', { timeout: 30_000 });
    expect(errors).toEqual([]);
    await page.close();
  }, 180_000);

  it('every installed method runs in the page (magnitude, SparseGPT, N:M, OWL, depth, LLM-Pruner) on pasted calibration text; GGUF download', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(isolated.url);
    await ready(page);
    await openExample(page);
    await loadText(page, 'calibration-file', head);
    const prune = async (method: string, options: Record<string, string | boolean>) => {
      await page.select('#method', method);
      await page.evaluate((values: Record<string, string | boolean>) => {
        for (const [key, value] of Object.entries(values)) {
          const field = document.getElementById(`option-${key}`) as HTMLInputElement;
          if (typeof value === 'boolean') field.checked = value;
          else field.value = value;
        }
        (document.getElementById('samples') as HTMLInputElement).value = '8';
        (document.getElementById('seqlen') as HTMLInputElement).value = '128';
        (document.getElementById('message') as HTMLElement).hidden = true;
      }, options);
      await page.click('#prune');
      const done = await settled(page);
      return { ...done, summary: await page.$eval('#prune-summary', (el) => el.textContent ?? '').catch(() => ''), charts: await page.$$eval('#charts svg', (svgs) => svgs.map((svg) => svg.querySelector('text')?.textContent ?? '')) };
    };
    const magnitude = await prune('magnitude', { sparsity: '0.5' });
    expect(magnitude.summary).toMatch(/^magnitude: .* · sparsity 50\.0 % · parameters 260,032 → 146,752$/);
    // calibration text pasted into the page (from here on)
    const pasted = readFileSync(head, 'utf8').slice(0, 20_000);
    await page.$eval('#calibration-text', (el, value) => ((el as HTMLTextAreaElement).value = value), pasted);
    expect((await prune('sparsegpt', { sparsity: '0.5' })).summary).toMatch(/^sparsegpt: .* · sparsity 50\.0 % · parameters 260,032 → 146,752 · calibration 8 × 128 tokens from pasted\.txt$/);
    expect((await prune('wanda', { sparsity: '', pattern: '2:4' })).summary).toMatch(/^wanda: .* · sparsity 50\.0 % · parameters 260,032 → 146,752/);
    expect((await prune('wanda', { pattern: '', sparsity: '0.7', owl: true })).summary).toMatch(/ · sparsity 69\.\d % · /);
    // a required option left empty is named, as the CLI names its flag
    expect(await prune('depth', {})).toMatchObject({ text: 'remove: is required', kind: 'error' });
    const depth = await prune('depth', { remove: '1' });
    expect(depth.summary).toMatch(/^depth: .* · parameters 260,032 → 214,592/); // one block of 45,440 gone
    const llm = await prune('llm-pruner', { ratio: '0.2' });
    expect(llm.summary).toMatch(/^llm-pruner: .* · parameters 260,032 → 208,192/);
    expect(llm.charts).toEqual(['Attention heads per layer — 1. prune (llm-pruner)', 'FFN width per layer — 1. prune (llm-pruner)']);
    // the slimmed (non-uniform) model as one GGUF file
    await page.click('#download-gguf');
    await page.waitForFunction(() => document.body.dataset.busy === undefined && (document.getElementById('download-text') as HTMLElement).dataset.files === 'model.gguf', { timeout: 30_000 });
    const magic = await page.$eval('#download-text a', async (a) => new TextDecoder().decode((await (await fetch((a as HTMLAnchorElement).href)).arrayBuffer()).slice(0, 4)));
    expect(magic).toBe('GGUF');
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);

  it('a llama2.c .bin + tokenizer picked as files opens; bad input: a message in the page names the file and the reason', async () => {
    const page = await browser.newPage();
    await page.goto(isolated.url);
    await ready(page);
    const notes = join(work, 'notes.txt');
    writeFileSync(notes, 'these are not weights\n');
    const junk = join(work, 'junk.bin');
    writeFileSync(junk, Buffer.alloc(64, 7));
    const pick = async (...files: string[]) => {
      await page.evaluate(() => ((document.getElementById('message') as HTMLElement).hidden = true));
      const field = (await page.$('#pick-files')) as ElementHandle<HTMLInputElement>;
      await field.uploadFile(...files);
      return settled(page);
    };
    // a llama2.c .bin picked as files with its tokenizer opens
    const llama2c = join(root, 'assets', 'models', 'stories260K');
    expect(await pick(join(llama2c, 'stories260K.bin'), join(llama2c, 'tok512.bin'))).toEqual({ text: 'opened stories260K.bin + tok512.bin: 260,032 parameters', kind: 'ok' });
    expect(await page.$eval('#summary', (el) => el.textContent)).toContain('llama2c (float32)');
    const notModel = await pick(notes);
    expect(notModel.kind).toBe('error');
    expect(notModel.text).toMatch(/^notes\.txt: notes\.txt is not a model/);
    const damaged = await pick(junk, join(root, 'assets', 'models', 'stories260K', 'tok512.bin'));
    expect(damaged.kind).toBe('error');
    expect(damaged.text).toMatch(/^junk\.bin: /);
    const hfJunk = join(work, 'hf-junk');
    mkdirSync(hfJunk);
    writeFileSync(join(hfJunk, 'model.safetensors'), Buffer.alloc(64, 7));
    const damagedHf = await pick(join(model, 'config.json'), join(hfJunk, 'model.safetensors'), join(model, 'tokenizer.json'));
    expect(damagedHf.kind).toBe('error');
    expect(damagedHf.text).toMatch(/^model\.safetensors: /);
    const mismatch = await pick(join(root, 'assets', 'models', 'stories260K', 'stories260K.bin'), join(here, 'fixtures', 'tok32.bin'));
    expect(mismatch.text).toMatch(/^tok32\.bin: tokenizer has 32 tokens but the model's vocabulary is 512/);
    // a failed open leaves the model that was open working
    await page.click('#generate');
    await page.waitForFunction(() => document.body.dataset.busy === undefined && (document.getElementById('generated') as HTMLElement).dataset.tokens !== undefined, { timeout: 30_000 });
    expect(await page.$eval('#generated', (el) => el.textContent)).toMatch(/^Once upon a time, there was a little girl named Lily/);
    await page.goto(`${isolated.url}?memory=0.5`); // a per-model limit of 0.5 MiB: stories260K (1 MiB as float32) is too big
    await ready(page);
    await page.evaluate(() => ((document.getElementById('message') as HTMLElement).hidden = true));
    await page.click('#example');
    const big = await settled(page);
    expect(big.kind).toBe('error');
    expect(big.text).toMatch(/^model\.safetensors: the model is too big for this page's memory: 260,032 parameters need 1\.0 MiB as float32, and the page holds at most 0\.5 MiB/);
    await page.close();
  }, 120_000);

  it('without cross-origin isolation: one thread, the same perplexity', async () => {
    const page = await browser.newPage();
    await page.goto(plain.url);
    const engine = await ready(page);
    expect(engine).toMatchObject({ isolated: false, threads: 1 });
    await openExample(page);
    await loadText(page, 'eval-file', head);
    const ppl = await perplexities(page);
    expect(Math.abs(ppl.original - (await reference).before)).toBeLessThan(1e-6);
    await page.close();
  }, 120_000);
});
