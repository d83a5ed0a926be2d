// The JavaScript side of bench/backends: one backend per process (a fresh tfjs engine each), same workloads as
// torch_bench.py. Usage: node js_bench.mjs <wasm|wasm-1thread|wasm-stock|cpu|gpujs|gpujs-webgl|node|node-gpu>. Prints one JSON
// object. `wasm` runs its GEMM on BENCH_THREADS threads (run.mjs passes its --threads), like torch.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const label = process.argv[2] ?? 'wasm';
const plugin = (name) => import(join(root, 'plugins', name, 'dist', 'index.js'));
// The one tfjs every plugin shares (pnpm links the same 4.22.0 into each plugin).
const tf = createRequire(join(root, 'plugins', 'backend-wasm', 'package.json'))('@tensorflow/tfjs');

async function makeBackend() {
  switch (label) {
    case 'wasm':
      return (await plugin('backend-wasm')).createWasmBackend({ threads: Number(process.env.BENCH_THREADS ?? 2) });
    case 'wasm-1thread':
      return (await plugin('backend-wasm')).createWasmBackend({ threads: 1 });
    case 'wasm-stock':
      return (await plugin('backend-wasm')).createWasmBackend({ fastMatMul: false });
    case 'cpu':
      return (await plugin('backend-cpu')).createCpuBackend();
    case 'gpujs':
      return (await plugin('backend-gpujs')).createGpujsBackend();
    case 'gpujs-webgl': {
      // WebGL or nothing (never gpu.js's fallback); with no DISPLAY, an Xvfb (Mesa llvmpipe) is started for it
      const gpujs = await plugin('backend-gpujs');
      await gpujs.ensureWebGL();
      return gpujs.createGpujsBackend({ mode: 'webgl' });
    }
    case 'node':
      return (await plugin('backend-node')).createNodeBackend();
    case 'node-gpu':
      return (await plugin('backend-node-gpu')).createNodeGpuBackend();
    default:
      throw new Error(`unknown backend ${label}`);
  }
}

/** Mean ms per call: at least minReps calls and minMs of work, but one call is enough when a call is slow. */
function timeit(fn, { minMs = 1000, minReps = 3, slowMs = 4000 } = {}) {
  const t0 = performance.now();
  fn();
  const first = performance.now() - t0;
  if (first > slowMs) return { ms: first, reps: 1, note: 'one call (slow): includes warm-up' };
  let reps = 0;
  const start = performance.now();
  while (reps < minReps || performance.now() - start < minMs) {
    fn();
    reps++;
  }
  return { ms: (performance.now() - start) / reps, reps };
}

const MATMULS = [
  ['matmul 512x512x512', 512, 512, 512],
  ['matmul 1024x1024x1024', 1024, 1024, 1024],
  ['matmul 2048x768x3072', 2048, 768, 3072],
];

// One LLaMA block, as in torch_bench.py: dim 288, 6 heads, FFN hidden 768, seq 256, batch 8.
const DIM = 288, HEADS = 6, HIDDEN = 768, SEQ = 256, BATCH = 8;
const HD = DIM / HEADS;

function blockFlops() {
  const t = BATCH * SEQ;
  const fwd = 2 * t * DIM * DIM * 4 + 2 * t * DIM * HIDDEN * 3 + 2 * BATCH * HEADS * SEQ * SEQ * HD * 2;
  return { fwd, total: 3 * fwd };
}

function makeBlock() {
  const p = (...shape) => tf.variable(tf.mul(tf.randomNormal(shape, 0, 1, 'float32', 1), 0.02));
  const params = {
    wq: p(DIM, DIM), wk: p(DIM, DIM), wv: p(DIM, DIM), wo: p(DIM, DIM),
    w1: p(DIM, HIDDEN), w3: p(DIM, HIDDEN), w2: p(HIDDEN, DIM),
    n1: tf.variable(tf.ones([DIM])), n2: tf.variable(tf.ones([DIM])),
  };
  const x = tf.randomNormal([BATCH, SEQ, DIM], 0, 1, 'float32', 2);
  const inv = tf.div(1, tf.pow(10000, tf.div(tf.range(0, HD, 2), HD)));
  const ang = tf.mul(tf.reshape(tf.range(0, SEQ), [SEQ, 1]), tf.reshape(inv, [1, HD / 2]));
  // cos/sin repeated per (even, odd) pair: [SEQ, HD].
  const cos = tf.reshape(tf.tile(tf.reshape(tf.cos(ang), [SEQ, HD / 2, 1]), [1, 1, 2]), [SEQ, HD]);
  const sin = tf.reshape(tf.tile(tf.reshape(tf.sin(ang), [SEQ, HD / 2, 1]), [1, 1, 2]), [SEQ, HD]);
  // RoPE as x⊙cos + (x·P)⊙sin with P the fixed pair rotation ((x·P)_2i = −x_2i+1, (x·P)_2i+1 = x_2i): one small
  // matmul instead of a split/concat on the last axis, which is very slow on wasm (its Slice/SplitV copy in JS).
  const rot = new Float32Array(HD * HD);
  for (let i = 0; i < HD; i += 2) {
    rot[(i + 1) * HD + i] = -1;
    rot[i * HD + i + 1] = 1;
  }
  const P = tf.tensor2d(rot, [HD, HD]);
  const mask = tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([SEQ, SEQ]), -1, 0)), -1e9);
  const rms = (v, w) => tf.mul(tf.mul(v, tf.rsqrt(tf.add(tf.mean(tf.mul(v, v), -1, true), 1e-5))), w);
  const heads = (m) => tf.transpose(tf.reshape(m, [BATCH, SEQ, HEADS, HD]), [0, 2, 1, 3]);
  const rope = (v) => {
    const turned = tf.reshape(tf.matMul(tf.reshape(v, [BATCH * HEADS * SEQ, HD]), P), [BATCH, HEADS, SEQ, HD]);
    return tf.add(tf.mul(v, cos), tf.mul(turned, sin));
  };
  const loss = () => {
    const h = tf.reshape(rms(x, params.n1), [BATCH * SEQ, DIM]);
    const q = rope(heads(tf.matMul(h, params.wq)));
    const k = rope(heads(tf.matMul(h, params.wk)));
    const v = heads(tf.matMul(h, params.wv));
    const att = tf.softmax(tf.add(tf.div(tf.matMul(q, k, false, true), Math.sqrt(HD)), mask));
    const o = tf.matMul(tf.reshape(tf.transpose(tf.matMul(att, v), [0, 2, 1, 3]), [BATCH * SEQ, DIM]), params.wo);
    const x1 = tf.add(x, tf.reshape(o, [BATCH, SEQ, DIM]));
    const h2 = tf.reshape(rms(x1, params.n2), [BATCH * SEQ, DIM]);
    const g = tf.matMul(h2, params.w1);
    const f = tf.matMul(tf.mul(tf.mul(g, tf.sigmoid(g)), tf.matMul(h2, params.w3)), params.w2);
    const y = tf.add(x1, tf.reshape(f, [BATCH, SEQ, DIM]));
    return tf.mean(tf.mul(y, y));
  };
  const step = () => {
    const { value, grads } = tf.variableGrads(loss);
    value.dataSync();
    for (const g of Object.values(grads)) g.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  };
  return step;
}

/** Slow backends (cpu, gpu.js fallbacks) skip a measurement whose estimate from the last rate exceeds this. */
const BUDGET_MS = Number(process.env.BENCH_BUDGET_MS ?? 30000);
let rate = Infinity; // FLOPs per ms seen so far (the slowest measurement)
const estimate = (flops) => flops / rate;
const observe = (flops, ms) => {
  rate = Math.min(rate, flops / ms);
};
const skipped = (flops) => ({ skipped: `estimated ${(estimate(flops) / 1000).toFixed(0)} s at ${(rate / 1e6).toFixed(2)} GFLOP/s > budget ${BUDGET_MS / 1000} s` });

async function main() {
  const backend = await makeBackend();
  const availability = await backend.available();
  if (!availability.ok) {
    console.log(JSON.stringify({ label, skipped: `${availability.reason} (fix: ${availability.fix})` }));
    return;
  }
  await backend.init();
  const result = { label, engine: tf.getBackend(), capabilities: backend.capabilities(), matmuls: [], block: null };
  for (const [name, m, k, n] of MATMULS) {
    const flops = 2 * m * k * n;
    if (estimate(flops) > BUDGET_MS) {
      result.matmuls.push({ name, flops, ...skipped(flops) });
      continue;
    }
    if (label.startsWith('gpujs')) {
      // gpujs accelerates the host-side primitives, not tfjs ops (those run on tfjs's cpu engine).
      const a = Float32Array.from({ length: m * k }, () => Math.random() - 0.5);
      const b = Float32Array.from({ length: k * n }, () => Math.random() - 0.5);
      const t = timeit(() => backend.primitives.matmul(a, b, m, k, n), { minMs: 500, minReps: 1, slowMs: 2000 });
      observe(flops, t.ms);
      result.matmuls.push({ name, flops, ms: t.ms, reps: t.reps, what: 'primitives.matmul (gpu.js)', note: t.note });
      continue;
    }
    const a = tf.randomNormal([m, k]);
    const b = tf.randomNormal([k, n]);
    const t = timeit(() => {
      const c = tf.matMul(a, b);
      c.dataSync();
      c.dispose();
    });
    observe(flops, t.ms);
    // The product with a transposed operand, as in every matmul gradient.
    const bt = tf.transpose(b);
    const tt = estimate(flops) > BUDGET_MS ? { ms: NaN } : timeit(() => {
      const c = tf.matMul(a, bt, false, true);
      c.dataSync();
      c.dispose();
    }, { minMs: 500, minReps: 1, slowMs: 2000 });
    result.matmuls.push({ name, flops, ms: t.ms, reps: t.reps, note: t.note, transposedB_ms: tt.ms });
    tf.dispose([a, b, bt]);
  }
  if (label.startsWith('gpujs')) {
    // the pruning primitive gpujs exists for: SparseGPT's Hessian, XᵀX over calibration rows (2048 × 768 here)
    const [n, d] = [2048, 768];
    const flops = 2 * n * d * d;
    if (estimate(flops) > BUDGET_MS) result.gram = { name: `accumulateGram ${n}x${d}`, flops, ...skipped(flops) };
    else {
      const x = Float32Array.from({ length: n * d }, () => Math.random() - 0.5);
      const acc = new Float64Array(d * d);
      const t = timeit(() => backend.primitives.accumulateGram(x, n, d, acc), { minMs: 500, minReps: 1, slowMs: 2000 });
      result.gram = { name: `accumulateGram ${n}x${d}`, flops, ms: t.ms, reps: t.reps, note: t.note };
    }
    // what really ran: the gpu.js kernel kind and, on WebGL, the renderer
    result.gpuMode = backend.gpuMode;
    result.renderer = backend.renderer ?? null;
    result.capabilities = backend.capabilities();
  }
  const { total, fwd } = blockFlops();
  if (!label.startsWith('gpujs') && estimate(total) > BUDGET_MS * 2) {
    result.block = { name: 'llama block fwd+bwd', flops: total, ...skipped(total) };
  } else if (!label.startsWith('gpujs')) {
    const step = makeBlock();
    const t = timeit(step, { minMs: 2000, minReps: 2, slowMs: 8000 });
    result.block = { name: 'llama block fwd+bwd (dim 288, 6 heads, seq 256, batch 8)', flops: total, forward_flops: fwd, ms: t.ms, reps: t.reps, note: t.note };
  }
  result.tensorsLeft = tf.memory().numTensors;
  console.log(JSON.stringify(result));
}

main().catch((err) => {
  console.log(JSON.stringify({ label, error: err instanceof Error ? err.message : String(err) }));
  process.exitCode = 1;
});
