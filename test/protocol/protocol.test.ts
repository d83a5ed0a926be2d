/**
 * The calibration protocol, checked against a reference that follows the ORIGINAL code, not ours
 * (bench/reference/protocol_reference.py: Wanda lib/data.py + lib/prune.py, SparseGPT datautils.py + llama.py +
 * sparsegpt.py — Python's `random` windows over the once-tokenized text, per-matrix magnitude, the originals'
 * sequential procedure). It never sees Topiary's windows, so agreement means the same protocol, not a shared mistake.
 *
 * Data: calibration from the first 75 % of the shipped TinyStories text, perplexity on the held-out rest (a text
 * no other test tunes on). Target: Topiary's seed-0 perplexity inside the reference's seed 0–4 band, ±1 %, for
 * magnitude, Wanda and SparseGPT at 50 % and 2:4. To stay fast the test scores the first 40 of the 190 held-out
 * windows, which the reference also reports; bench/prune/protocol.mjs compares the whole file, every seed and 4:8.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM shared with bench/prune/protocol.mjs
import { CASES, heldoutPerplexity, MODEL_DIR, protocolSetup, pruneAndScore, readReference, referenceBand } from './protocol-lib.mjs';
import { loadModel } from '@topiary/model-llama';

interface Band {
  min: number;
  max: number;
}
type Setup = Awaited<ReturnType<typeof protocolSetup>>;

const reference = readReference() as {
  dense: { noBos: number; noBosPrefix: number };
  settings: { nsamples: number; seqlen: number };
  runs: Record<string, { prefix: { windows: number } }>;
};
const windows = reference.runs['wanda-50']!.prefix.windows;
let setup: Setup;
const rows: string[] = [];

describe('post-training pruning follows the original calibration protocol (stories260K, held-out TinyStories)', () => {
  beforeAll(async () => {
    setup = await protocolSetup({ samples: reference.settings.nsamples, seqLen: reference.settings.seqlen });
  }, 120_000);
  afterAll(() => {
    if (rows.length > 0) console.log(`protocol check (Topiary seed 0 vs reference seeds 0–4):\n${rows.join('\n')}`);
  });

  it('dense perplexity on the held-out text equals the reference (no BOS, 512-token windows)', async () => {
    const model = await loadModel(MODEL_DIR);
    const ppl = (await heldoutPerplexity(setup, model, windows)) as number;
    model.dispose();
    rows.push(`  dense          ${ppl.toFixed(4)}   reference ${reference.dense.noBosPrefix.toFixed(4)}`);
    expect(Math.abs(ppl / reference.dense.noBosPrefix - 1)).toBeLessThan(1e-5);
  }, 120_000);

  // 4:8 is left to bench/prune/protocol.mjs, which prints it with the reason it differs: stories260K's FFN width 172
  // ends in a 4-column group, and the originals' topk(4) prunes all 4 of it (Wanda lib/prune.py 116–120, SparseGPT
  // sparsegpt.py 106–108) where Topiary prunes floor(4·4/8) = 2 — on LLaMA widths (multiples of 8) there is no tail.
  for (const name of (Object.keys(CASES) as string[]).filter((n) => !n.endsWith('4:8'))) {
    it(`${name}: inside the reference's seed band ±1 %`, async () => {
      const band = referenceBand(reference, name, { prefix: true }) as Band;
      const { ppl } = (await pruneAndScore(setup, name, 0, windows)) as { ppl: number };
      rows.push(`  ${name.padEnd(14)} ${ppl.toFixed(3).padStart(8)}   band [${band.min.toFixed(3)}, ${band.max.toFixed(3)}]`);
      expect(ppl).toBeGreaterThanOrEqual(band.min);
      expect(ppl).toBeLessThanOrEqual(band.max);
    }, 300_000);
  }
});
