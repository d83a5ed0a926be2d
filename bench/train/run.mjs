#!/usr/bin/env node
// bench/train — LLaMA training tokens/s and peak RSS: Topiary's default (wasm) and fastest (native, when built)
// backends vs PyTorch CPU with OpenBLAS, same shapes, same threads, one run. A script, not a test.
// Usage (repo root, after `pnpm build`; the native column needs `pnpm --filter @topiary/backend-native build:native`):
//   node bench/train/run.mjs [--shapes 64,288,512] [--seq 256] [--batch 8] [--steps 3] [--warmup 1] [--threads 2] [--backends wasm,native]
import { compare, parseArgs } from './driver.mjs';

compare('train', 'train', parseArgs(process.argv.slice(2), {}), { speed: 1.3, defaultSpeed: 0.7, rss: 1.0 });
