// Generate a story with the shipped stories260K model: `pnpm --filter @topiary/model-llama quickstart`
// (needs the package built: `pnpm --filter @topiary/model-llama build`).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { loadModel, generate } from '@topiary/model-llama';
import { loadTokenizer } from '@topiary/corpus';

const models = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'assets', 'models');
await tf.setBackend('cpu'); // or 'wasm' after `await import('@tensorflow/tfjs-backend-wasm')`
const model = await loadModel(join(models, 'stories260K-hf'));
const tok = await loadTokenizer(join(models, 'stories260K-hf', 'tokenizer.json'));
const prompt = process.argv[2] ?? 'Once upon a time';
const ids = generate(model, tok.encode(prompt, { bos: true }), { maxTokens: 100 });
console.log(tok.decode([...tok.encode(prompt), ...ids]));
