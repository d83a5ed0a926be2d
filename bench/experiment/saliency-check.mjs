// Does the training saliency rank groups of different kinds on one scale? For the pretrained source
// (stories260K), compare each group's Taylor estimate with the TRUE loss change of removing it (mask the group,
// measure the held-out-batch loss), per kind, per parameter. Prints, per kind: mean true ΔL per parameter, mean
// estimated ΔL per parameter (first order, second order, both), and the rank correlation between estimate and truth.
//   node bench/experiment/saliency-check.mjs [--batches 8] [--sample 24]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { loadModel } from '../../packages/model-llama/dist/index.js';
import { loadTokenizer } from '../../packages/corpus/dist/index.js';
import { BatchSampler, loadTrainingBlocks } from '../../packages/trainer/dist/index.js';
import { PruneTracker, elementScores, groupSums, taylorFisher, taylorGroup } from '../../packages/structured-core/dist/index.js';
const tf = createRequire(join(import.meta.dirname, '..', '..', 'packages', 'model-llama', 'package.json'))('@tensorflow/tfjs');

const arg = (k, d) => { const i = process.argv.indexOf(`--${k}`); return i > 0 ? Number(process.argv[i + 1]) : d; };
const root = join(import.meta.dirname, '..', '..');
const data = join(root, 'runs', 'efficientllm-pretrained', 'data');
await tf.setBackend('cpu');
const tokenizer = await loadTokenizer(join(root, 'assets/models/stories260K/tok512.bin'));
const model = await loadModel(join(root, 'assets/models/stories260K/stories260K.bin'));
const blocks = loadTrainingBlocks({ train: join(data, 'train.txt'), valid: join(data, 'heldout.txt'), seqLen: 64, validFraction: 0 }, tokenizer);
const sampler = new BatchSampler(blocks, 16, 0);
const nBatches = arg('batches', 8);
const params = model.parameters();
const names = [...params.keys()];
const vars = names.map((n) => params.get(n));
// gradients of several batches: mean gradient (first order) and mean squared gradient (Fisher)
const gSum = new Map(names.map((n) => [n, new Float32Array(params.get(n).size)]));
const g2Sum = new Map(names.map((n) => [n, new Float32Array(params.get(n).size)]));
for (let b = 0; b < nBatches; b++) {
  const ids = sampler.batch(b);
  const { value, grads } = tf.variableGrads(() => model.loss(ids), vars);
  names.forEach((n, i) => { const g = grads[vars[i].name].dataSync(); const s = gSum.get(n), s2 = g2Sum.get(n); for (let k = 0; k < g.length; k++) { s[k] += g[k] / nBatches; s2[k] += (g[k] * g[k]) / nBatches; } });
  value.dispose(); tf.dispose(grads); ids.dispose();
}
const shapes = new Map(names.map((n) => [n, params.get(n).shape]));
const pg = new Map(names.map((n) => [n, { grad: gSum.get(n), gradSquared: g2Sum.get(n), shape: shapes.get(n) }]));
const kinds = ['head', 'ffn-channel', 'hidden-channel'];
const tracker = new PruneTracker(model);
const groups = tracker.liveGroups(kinds);
const first = groupSums(groups, elementScores(model, taylorGroup, pg)); // −Σ w·ḡ
const both = groupSums(groups, elementScores(model, taylorFisher, pg)); // −Σ w·ḡ + ½ Σ w² E[g²]
// true ΔL on held-out batches for a sample of groups of each kind
const validIds = (() => { const n = Math.min(64, blocks.valid.length); const flat = new Int32Array(n * blocks.blockLen); for (let i = 0; i < n; i++) flat.set(blocks.valid[i], i * blocks.blockLen); return tf.tensor2d(flat, [n, blocks.blockLen], 'int32'); })();
const lossNow = (m) => tf.tidy(() => m.loss(validIds).dataSync()[0]);
const base = lossNow(model);
const sample = arg('sample', 24);
const rows = [];
for (const kind of kinds) {
  const ofKind = groups.map((g, i) => ({ g, i })).filter((x) => x.g.kind === kind);
  const step = Math.max(1, Math.floor(ofKind.length / sample));
  for (let k = 0; k < ofKind.length; k += step) {
    const { g, i } = ofKind[k];
    const m = model.clone(); m.maskGroups([g.id]);
    const truth = lossNow(m) - base; m.dispose();
    rows.push({ kind, id: g.id, size: tracker.marginal(g), truth, first: -first[i] === 0 ? 0 : first[i], second: both[i] - first[i], both: both[i] });
  }
}
const rank = (xs) => { const o = xs.map((v, i) => [v, i]).sort((a, b) => a[0] - b[0]); const r = new Array(xs.length); o.forEach(([, i], k) => (r[i] = k)); return r; };
const spearman = (a, b) => { const ra = rank(a), rb = rank(b); const n = a.length; let d = 0; for (let i = 0; i < n; i++) d += (ra[i] - rb[i]) ** 2; return 1 - (6 * d) / (n * (n * n - 1)); };
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log(`stories260K, ${nBatches} training batches of 16×64 for the gradients; true ΔL on ${validIds.shape[0]} held-out blocks (base loss ${base.toFixed(4)})`);
console.log('kind             n   params/grp  trueΔL/param   |1st|/param   2nd/param   |1st+2nd|/param  spearman(|1st+2nd|, true)  spearman(2nd, true)');
for (const kind of kinds) {
  const r = rows.filter((x) => x.kind === kind);
  const f = (sel) => mean(r.map((x) => sel(x) / x.size)).toExponential(2).padStart(12);
  console.log(`${kind.padEnd(15)} ${String(r.length).padStart(3)} ${String(Math.round(mean(r.map((x) => x.size)))).padStart(10)} ${f((x) => x.truth)}  ${f((x) => Math.abs(x.first))}  ${f((x) => x.second)}  ${f((x) => Math.abs(x.both))}   ${spearman(r.map((x) => Math.abs(x.both)), r.map((x) => x.truth)).toFixed(2).padStart(8)}   ${spearman(r.map((x) => x.second), r.map((x) => x.truth)).toFixed(2).padStart(8)}`);
}
const all = rows;
console.log(`all kinds: spearman per param — |1st+2nd|: ${spearman(all.map((x) => Math.abs(x.both) / x.size), all.map((x) => x.truth / x.size)).toFixed(2)}, 2nd: ${spearman(all.map((x) => x.second / x.size), all.map((x) => x.truth / x.size)).toFixed(2)}, |1st|: ${spearman(all.map((x) => Math.abs(x.first) / x.size), all.map((x) => x.truth / x.size)).toFixed(2)}`);
if (process.argv.includes('--json')) console.log(JSON.stringify(rows));
