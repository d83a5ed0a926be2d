#!/usr/bin/env node
// `topiary inspect` at real sizes reads headers only. For each shape, a checkpoint whose weights are holes of a sparse
// file (the headers are real, no weight byte is on disk) is inspected in a fresh process; the table shows the whole
// command's wall time and the time inside the command (from the CLI's own start to its output), beside `node -e ''`.
//
//   node bench/scale/inspect.mjs [--shapes smollm-135m,smollm-360m,tinyllama-1.1b,llama-2-7b,llama-3-8b]
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SHAPES, shapeConfig, tensorList, parameterCounts } from './shapes.mjs';
import { loadModel, writeHeaderOnlySafetensors } from '../../packages/model-llama/dist/index.js';
import { describeModel } from '../../apps/cli/dist/commands/inspect.js';

const root = resolve(import.meta.dirname, '..', '..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const shapes = arg('--shapes', Object.keys(SHAPES).filter((s) => s !== 'tiny4').join(',')).split(',');

function sparseCheckpoint(name) {
  const { config } = shapeConfig(name);
  const dir = join(root, 'bench', 'out', 'scale-sparse', name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, torch_dtype: 'bfloat16' }));
  const file = join(dir, 'model.safetensors');
  if (!existsSync(file)) writeHeaderOnlySafetensors(file, tensorList(config), 'BF16');
  return { dir, config };
}

const cli = join(root, 'apps', 'cli', 'dist', 'bin.js');
const time = (args) => {
  const t = process.hrtime.bigint();
  const out = execFileSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 28 });
  return { seconds: Number(process.hrtime.bigint() - t) / 1e9, out };
};
const nodeOnly = Math.min(...[0, 1, 2].map(() => time(['-e', '']).seconds));
const help = Math.min(...[0, 1].map(() => time([cli, '--version']).seconds));
console.log(`node -e '' ${nodeOnly.toFixed(2)} s; topiary --version (CLI start-up) ${help.toFixed(2)} s`);
console.log('shape            parameters   file GB   command s   in-process s (open headers + describe)');
const rows = [];
for (const name of shapes) {
  const { dir, config } = sparseCheckpoint(name);
  const runs = [0, 1].map(() => time([cli, '--json', 'inspect', '--model', dir]));
  const best = Math.min(...runs.map((r) => r.seconds));
  const info = JSON.parse(runs[0].out);
  const expected = parameterCounts(config).total;
  if (info.parameters.total !== expected) throw new Error(`${name}: inspect counts ${info.parameters.total}, the shape has ${expected}`);
  const gb = (expected * 2) / 1e9;
  const t0 = process.hrtime.bigint();
  const model = await loadModel(dir, { residency: 'block' });
  describeModel(model);
  model.dispose();
  const inProcess = Number(process.hrtime.bigint() - t0) / 1e9;
  rows.push({ shape: name, parameters: expected, seconds: best, inProcess });
  console.log(`${name.padEnd(16)} ${(expected / 1e9).toFixed(2).padStart(8)}B ${gb.toFixed(1).padStart(9)} ${best.toFixed(2).padStart(11)} ${inProcess.toFixed(3).padStart(12)}`);
}
mkdirSync(join(root, 'bench', 'out'), { recursive: true });
writeFileSync(join(root, 'bench', 'out', 'scale-inspect.json'), JSON.stringify({ nodeOnly, startup: help, rows }, null, 2));
