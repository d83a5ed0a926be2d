#!/usr/bin/env node
/**
 * The protocol check over every seed: Topiary's magnitude / Wanda / SparseGPT on stories260K (calibration drawn
 * from bench/reference/fixtures/tinystories-split/calibration.txt, 128 × 256 tokens; perplexity on heldout.txt,
 * whole file, no BOS, 512-token windows) for calibration seeds 0–4, next to the reference that follows the original
 * code (bench/reference/protocol_reference.py → outputs/protocol_reference.json). Prints per-seed perplexities,
 * both bands, and whether Topiary's seed-0 result (the test's) and its mean sit inside the reference band ±1 %.
 *
 *   node bench/prune/protocol.mjs [--seeds 0,1,2,3,4] [--cases wanda-50,sparsegpt-2:4,...]
 *
 * Needs `pnpm build`. Writes bench/out/protocol-<time>.json. Not a timed test: accuracy only.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CASES, protocolSetup, pruneAndScore, readReference, referenceBand, repoRoot } from '../../test/protocol/protocol-lib.mjs';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const seeds = arg('seeds', '0,1,2,3,4').split(',').map(Number);
const cases = arg('cases', Object.keys(CASES).join(',')).split(',');
const reference = readReference();
const setup = await protocolSetup({ samples: reference.settings.nsamples, seqLen: reference.settings.seqlen });

const NOTE_4_8 = 'tail: the originals prune all 4 columns of the last (4-wide) group of the 172-wide FFN input; Topiary 2 of 4';
const results = {};
console.log(`calibration ${reference.settings.nsamples} × ${reference.settings.seqlen}, seeds ${seeds.join(',')}; reference dense ${reference.dense.noBos.toFixed(4)}`);
console.log('| case | Topiary per seed | Topiary min–max (mean) | reference min–max (mean) | seed 0 in band ±1 % | mean in band ±1 % |');
console.log('|---|---|---|---|---|---|');
for (const name of cases) {
  const runs = [];
  for (const seed of seeds) runs.push(await pruneAndScore(setup, name, seed));
  const ppl = runs.map((r) => r.ppl);
  const mean = ppl.reduce((a, b) => a + b, 0) / ppl.length;
  const band = referenceBand(reference, name);
  const inBand = (x) => x >= band.min && x <= band.max;
  const seed0 = seeds.indexOf(0) >= 0 ? ppl[seeds.indexOf(0)] : undefined;
  results[name] = { seeds, ppl, mean, seconds: runs.map((r) => r.seconds), sparsity: runs[0].sparsity, reference: { min: band.run.min, max: band.run.max, mean: band.run.mean }, seed0InBand: seed0 === undefined ? null : inBand(seed0), meanInBand: inBand(mean) };
  const note = name.endsWith('4:8') ? ` (${NOTE_4_8})` : '';
  console.log(
    `| ${name} | ${ppl.map((p) => p.toFixed(2)).join(' / ')} | ${Math.min(...ppl).toFixed(2)}–${Math.max(...ppl).toFixed(2)} (${mean.toFixed(2)}) | ${band.run.min.toFixed(2)}–${band.run.max.toFixed(2)} (${band.run.mean.toFixed(2)}) | ${seed0 === undefined ? '—' : inBand(seed0) ? 'yes' : 'NO'} | ${inBand(mean) ? 'yes' : 'NO'}${note} |`,
  );
}
const outDir = join(repoRoot, 'bench', 'out');
mkdirSync(outDir, { recursive: true });
const file = join(outDir, `protocol-${Date.now()}.json`);
writeFileSync(file, `${JSON.stringify({ settings: reference.settings, results }, null, 1)}\n`);
console.log(`wrote ${file}`);
process.exit(0);
