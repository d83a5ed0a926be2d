#!/usr/bin/env node
// bench/eval — perplexity evaluation tokens/s (forward + cross-entropy, no gradients) and peak RSS: Topiary's
// default (wasm) and fastest (native, when built) backends vs PyTorch CPU with OpenBLAS. A script, not a test.
// Usage (repo root, after `pnpm build`):
//   node bench/eval/run.mjs [--shapes 64,288,512] [--seq 256] [--batch 8] [--steps 5] [--warmup 1] [--threads 2] [--backends wasm,native]
import { compare, parseArgs } from '../train/driver.mjs';

compare('eval', 'eval', parseArgs(process.argv.slice(2), { steps: 5 }), { speed: 1.3, defaultSpeed: 0.7, rss: 1.0 });
