/**
 * Fuzz stress: N mutated inputs per format (default 1600, so that at least 1000 per format are really broken —
 * some mutations leave a file valid, e.g. a bit flip inside a weight), each case in a worker thread with a per-case timeout
 * (a hung case is terminated and counted), a JS heap cap (a runaway allocation kills the worker and is counted),
 * and the RSS / ArrayBuffer growth of every case measured (over MEMORY_LIMIT counts as a failure).
 *
 *   node test/stress/fuzz.mjs [--count 1600] [--seed 1] [--timeout 5000] [--only safetensors,recipe]
 *
 * Needs built packages (`pnpm build`): workers run under plain Node. Writes a JSON report and prints a summary;
 * exits 1 when any case failed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { targets } from '../reliability/fuzz/targets.mjs';

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '1600' },
    'min-bad': { type: 'string', default: '1000' },
    seed: { type: 'string', default: '1' },
    timeout: { type: 'string', default: '5000' },
    only: { type: 'string' },
    report: { type: 'string' },
  },
});
const COUNT = Number(args.count);
const SEED = Number(args.seed);
const TIMEOUT_MS = Number(args.timeout);
const MEMORY_LIMIT = 256 * 1024 * 1024;
const HEAP_CAP_MB = 1024;

const json = (v) => JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? `${x}n` : x));

/** Run every case of one target; returns per-case records. */
async function fuzzTarget(target, root) {
  const records = new Array(COUNT);
  let next = 0;
  while (next < COUNT) {
    next = await new Promise((resolveRun) => {
      const worker = new Worker(new URL('./fuzz-worker.mjs', import.meta.url), {
        workerData: { targetName: target.name, seed: SEED, count: COUNT, start: next, root },
        resourceLimits: { maxOldGenerationSizeMb: HEAP_CAP_MB },
        stdout: true,
        stderr: true,
      });
      let current = next;
      let timer;
      let settled = false;
      const finish = (resumeAt) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolveRun(resumeAt);
      };
      worker.on('message', (msg) => {
        if (msg.type === 'start') {
          current = msg.i;
          clearTimeout(timer);
          timer = setTimeout(() => {
            records[current] = { i: current, outcome: 'timeout', ms: TIMEOUT_MS };
            void worker.terminate();
            finish(current + 1);
          }, TIMEOUT_MS);
        } else if (msg.type === 'done') {
          clearTimeout(timer);
          const r = { i: msg.i, ...msg.result, ms: msg.ms, rssGrowth: msg.rssGrowth, arrayBuffersGrowth: msg.arrayBuffersGrowth };
          if (r.outcome !== 'untyped' && (msg.rssGrowth > MEMORY_LIMIT || msg.arrayBuffersGrowth > MEMORY_LIMIT)) r.outcome = 'memory';
          records[msg.i] = r;
        } else if (msg.type === 'end') {
          void worker.terminate();
          finish(COUNT);
        }
      });
      worker.on('error', (e) => {
        records[current] = { i: current, outcome: 'crash', message: String(e?.code ?? '') + ' ' + String(e?.message ?? e).slice(0, 300) };
        finish(current + 1);
      });
      worker.on('exit', () => finish(records[current] ? current + 1 : current + 1));
    });
  }
  return records;
}

const root = mkdtempSync(join(tmpdir(), 'topiary-fuzz-'));
const chosen = args.only ? targets.filter((t) => args.only.split(',').includes(t.name)) : targets;
const report = { count: COUNT, seed: SEED, timeoutMs: TIMEOUT_MS, memoryLimitBytes: MEMORY_LIMIT, heapCapMb: HEAP_CAP_MB, targets: [] };
let failed = 0;
const started = Date.now();
for (const target of chosen) {
  const t0 = Date.now();
  const records = await fuzzTarget(target, root);
  const tally = {};
  for (const r of records) tally[r?.outcome ?? 'missing'] = (tally[r?.outcome ?? 'missing'] ?? 0) + 1;
  const bad = records.filter((r) => !r || !['ok', 'typed'].includes(r.outcome));
  failed += bad.length;
  if ((tally.typed ?? 0) < Number(args['min-bad'])) console.log(`   note: only ${tally.typed ?? 0} of the ${COUNT} inputs were rejected (wanted ${args['min-bad']}); raise --count`);
  const maxMs = Math.max(...records.map((r) => r?.ms ?? 0));
  const maxGrowth = Math.max(...records.map((r) => Math.max(r?.rssGrowth ?? 0, r?.arrayBuffersGrowth ?? 0)));
  const codes = {};
  for (const r of records) if (r?.code && r.outcome === 'typed') codes[r.code] = (codes[r.code] ?? 0) + 1;
  report.targets.push({ name: target.name, description: target.description, cases: COUNT, tally, codes, maxCaseMs: Math.round(maxMs), maxMemoryGrowthMB: +(maxGrowth / 2 ** 20).toFixed(1), seconds: (Date.now() - t0) / 1000, failures: bad.slice(0, 20) });
  console.log(
    `${target.name.padEnd(20)} ${String(COUNT).padStart(5)} cases  ${Object.entries(tally).map(([k, v]) => `${k} ${v}`).join(', ').padEnd(40)} max ${Math.round(maxMs)} ms/case, max growth ${(maxGrowth / 2 ** 20).toFixed(1)} MB, ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
  for (const f of bad.slice(0, 5)) console.log(`   FAIL #${f?.i} ${f?.outcome} ${f?.code ?? ''} ${String(f?.message ?? '').split('\n')[0]}`);
}
report.seconds = (Date.now() - started) / 1000;
report.failed = failed;
report.total = COUNT * chosen.length;
const reportPath = args.report ?? join(tmpdir(), `topiary-fuzz-report-${SEED}.json`);
writeFileSync(reportPath, json(report));
rmSync(root, { recursive: true, force: true });
console.log(`fuzz: ${report.total} inputs, ${failed} failures, ${report.seconds.toFixed(1)} s; report ${reportPath}`);
process.exitCode = failed > 0 ? 1 : 0;
