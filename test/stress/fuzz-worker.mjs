// Runs fuzz cases of one target in a worker thread and reports each start/finish to the parent, which enforces
// the per-case timeout (terminating this worker) and restarts after the case that hung or crashed.
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { mutations, prepare, runCase, targets } from '../reliability/fuzz/targets.mjs';

await tf.setBackend('cpu');
await tf.ready();
const { targetName, seed, count, start, root } = workerData;
const target = targets.find((t) => t.name === targetName);
const file = prepare(target, root);
const list = mutations(target, count, seed);
for (let i = start; i < count; i++) {
  parentPort.postMessage({ type: 'start', i });
  if (i % 25 === 0 && global.gc) global.gc();
  const before = process.memoryUsage();
  const t0 = performance.now();
  const result = await runCase(target, file, list[i]);
  const ms = performance.now() - t0;
  const after = process.memoryUsage();
  parentPort.postMessage({
    type: 'done',
    i,
    result,
    ms,
    rssGrowth: after.rss - before.rss,
    arrayBuffersGrowth: after.arrayBuffers - before.arrayBuffers,
    tensors: tf.memory().numTensors,
  });
}
parentPort.postMessage({ type: 'end' });
