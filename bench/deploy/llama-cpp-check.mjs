#!/usr/bin/env node
/**
 * Loads a GGUF written by `topiary export --format gguf` in llama.cpp (through node-llama-cpp's prebuilt binaries)
 * and compares its greedy continuation with Topiary's `generate` on the same prompt.
 *
 *   node bench/deploy/llama-cpp-check.mjs --gguf FILE --model MODEL [--tokenizer TOK] [--prompt TEXT] [--tokens 20]
 *
 * node-llama-cpp is not a workspace dependency (its optional CUDA/Vulkan builds weigh hundreds of MB): install it
 * anywhere with `npm install --omit=optional node-llama-cpp @node-llama-cpp/linux-x64` and point NODE_LLAMA_CPP at
 * that node_modules/node-llama-cpp folder (default: resolved from here).
 * Prints one JSON line { same, llamaCpp: { ids, text }, topiary: { ids, text } }; exits 1 when they differ.
 */
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(repoRoot, 'apps', 'cli', 'dist', 'bin.js');

const { values } = parseArgs({
  options: {
    gguf: { type: 'string' },
    model: { type: 'string' },
    tokenizer: { type: 'string' },
    prompt: { type: 'string', default: 'Once upon a time' },
    tokens: { type: 'string', default: '20' },
  },
});
if (!values.gguf || !values.model) {
  process.stderr.write('usage: llama-cpp-check.mjs --gguf FILE --model MODEL [--tokenizer TOK] [--prompt TEXT] [--tokens N]\n');
  process.exit(2);
}
const n = Number(values.tokens);
const where = process.env.NODE_LLAMA_CPP ? pathToFileURL(join(resolve(process.env.NODE_LLAMA_CPP), 'dist', 'index.js')).href : 'node-llama-cpp';
const { getLlama, LlamaLogLevel } = await import(where);
// Topiary (the built CLI): greedy, BOS + prompt; --json gives the generated ids
const run = (args) => JSON.parse(execFileSync(process.execPath, [cli, '--json', '--backend', 'cpu', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
const tokArgs = values.tokenizer ? ['--tokenizer', values.tokenizer] : [];
const gen = run(['generate', '--model', values.model, ...tokArgs, '--prompt', values.prompt, '--max-tokens', String(n)]);
const topiaryIds = gen.ids.slice(0, n);

// llama.cpp: the same prompt ids (so tokenizers cannot differ), greedy sampling
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: values.gguf, gpuLayers: 0 });
const context = await model.createContext({ contextSize: 256, batchSize: 64 });
const sequence = context.getSequence();
const llamaIds = [];
const ggufPrompt = Array.from(model.tokenize(values.prompt, true), Number);
const promptIds = [model.tokens.bos ?? 1, ...ggufPrompt.filter((t) => t !== model.tokens.bos)];
for await (const token of sequence.evaluate(promptIds, { temperature: 0 })) {
  llamaIds.push(Number(token));
  if (llamaIds.length >= n) break;
}
const same = llamaIds.length === topiaryIds.length && llamaIds.every((t, i) => t === topiaryIds[i]);
process.stdout.write(
  `${JSON.stringify({
    same,
    prompt: values.prompt,
    llamaCppPromptIds: promptIds,
    llamaCpp: { ids: llamaIds, text: model.detokenize(llamaIds) },
    topiary: { ids: topiaryIds, text: gen.text },
  })}\n`,
);
await context.dispose();
await model.dispose();
process.exit(same ? 0 : 1);
