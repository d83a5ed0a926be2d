#!/usr/bin/env node
// The README table: perplexity of stories260K pruned by each method/pattern (± OWL) with `topiary prune`.
// Usage (repo root, after `pnpm build`): node bench/prune/table.mjs [--samples 64] [--seqlen 128] [--eval-limit 32] [--eval FILE]
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(new URL('.', import.meta.url).pathname, '..', '..');
const arg = (flag, dflt) => (process.argv.includes(flag) ? process.argv[process.argv.indexOf(flag) + 1] : dflt);
const model = arg('--model', join(root, 'assets', 'models', 'stories260K-hf'));
const text = arg('--calibration', join(root, 'assets', 'data', 'tinystories_val_head.txt'));
const evalFile = arg('--eval', text);
const common = ['--calibration', text, '--samples', arg('--samples', '64'), '--seqlen', arg('--seqlen', '128'), '--eval', evalFile, '--eval-limit', arg('--eval-limit', '32')];
const work = mkdtempSync(join(tmpdir(), 'topiary-prune-table-'));
const once = (label, extra) =>
  JSON.parse(execFileSync(process.execPath, [join(root, 'apps', 'cli', 'dist', 'bin.js'), '--json', '--out', join(work, label), 'prune', '--model', model, ...common, ...extra],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 28 }));
// one retry: on a shared checkout another build may be rewriting a plugin's dist/ at that moment
const run = (label, extra) => {
  try {
    return once(label, extra);
  } catch {
    return once(label, extra);
  }
};
const cells = {};
let dense;
for (const method of ['magnitude', 'wanda', 'sparsegpt']) {
  for (const [col, extra] of [['50%', ['--sparsity', '0.5']], ['50% + OWL', ['--sparsity', '0.5', '--owl']], ['2:4', ['--pattern', '2:4']], ['4:8', ['--pattern', '4:8']]]) {
    const r = run(`${method}-${col.replace(/\W/g, '')}`, ['--method', method, ...extra]);
    dense = r.perplexity.before;
    cells[`${method}|${col}`] = r.perplexity.after.toFixed(2);
    process.stderr.write(`${method} ${col}: ${r.perplexity.after.toFixed(3)} (sparsity ${r.sparsity.toFixed(4)}, ${r.seconds.toFixed(1)} s)\n`);
  }
}
const cols = ['50%', '50% + OWL', '2:4', '4:8'];
console.log(`| method | ${cols.join(' | ')} |\n|---|${cols.map(() => '---:').join('|')}|`);
console.log(`| dense | ${cols.map(() => dense.toFixed(2)).join(' | ')} |`);
for (const m of ['magnitude', 'wanda', 'sparsegpt']) console.log(`| ${m} | ${cols.map((c) => cells[`${m}|${c}`]).join(' | ')} |`);
